---@meta dreamos.llm
-- Chat completions from the OpenAI-compatible server of [llm] in dreamos.toml (Ollama,
-- llama.cpp's llama-server, OpenAI, vLLM, ...). The server and its key are the
-- configuration's, so no net: grant is needed and scripts never see the key.
-- Misuse (unknown option, no or empty messages, no model and no llm.model default, a
-- message without role or content) raises. Failures of the world return nil, err with
-- err.kind one of "connect", "timeout", "auth" (401/403, or api_key_env's variable unset),
-- "not_found" (404, usually an unknown model), "rate_limited" (429), "unavailable" (503,
-- e.g. a model still loading), "bad_request" (400 and other 4xx), "server" (other 5xx, or an
-- error reported inside the answer), "protocol" (an answer that is not the protocol).
-- err.status is the HTTP status when there was one; err.retry_after the server's
-- Retry-After in seconds. 429, 503 and refused connections are retried llm.retries times
-- (default 2) first; a stream that has started is never retried.

---@class dreamos.llm
local llm = {}

---@class dreamos.llm.Message
---@field role "system"|"user"|"assistant"|"tool"
---@field content? string|table[]  text, or parts: {type="text", text=...}, {type="image_url", image_url={url=...}}; may be absent with tool_calls
---@field name? string
---@field tool_calls? dreamos.llm.ToolCall[]  an assistant turn that called tools (a result's tool_calls can be passed back as they are)
---@field tool_call_id? string                the call a role="tool" message answers

---@class dreamos.llm.ChatOptions
---@field messages dreamos.llm.Message[]  at least one
---@field model? string                   default llm.model from dreamos.toml (required when that is "")
---@field stream? fun(text: string)       called with each piece of the answer's text as it arrives; chat still returns the whole result
---@field temperature? number
---@field max_tokens? integer
---@field stop? string|string[]
---@field tools? table[]                  {type="function", ["function"]={name, description, parameters}}
---@field response_format? table|string   {type="json_object"}, or the type alone: "json_object"
---@field seed? integer
---@field timeout? number|string          per attempt, and per wait for the next piece of a stream (default llm.timeout, "120s")

---@class dreamos.llm.ToolCall
---@field id string
---@field type string        "function"
---@field name string
---@field arguments string   the JSON text the model wrote
---@field args? any          arguments decoded, when they are valid JSON

---@class dreamos.llm.Usage
---@field prompt_tokens integer
---@field completion_tokens integer
---@field total_tokens integer

---@class dreamos.llm.Result
---@field content string                  the answer ("" when the model only called tools)
---@field role string                     "assistant"
---@field finish_reason string            "stop", "length", "tool_calls", "content_filter" ("" if the server gave none)
---@field model string                    the model that answered
---@field tool_calls dreamos.llm.ToolCall[]  empty when none
---@field usage? dreamos.llm.Usage        absent when the server reports none
---@field reasoning? string               the thinking of reasoning models, apart from content

--- Asks the model. Raises on misuse; returns nil, err when the server cannot be reached,
--- is too slow, refuses the key or the model, is busy or unavailable after the retries,
--- or answers something that is not a chat completion. An error raised by the stream
--- function stops the call and is raised.
---@param opts dreamos.llm.ChatOptions
---@return dreamos.llm.Result|nil
---@return dreamos.Error|nil
function llm.chat(opts) end

--- The ids of the models the server offers (GET {base_url}/models). Returns nil, err
--- with the kinds of chat.
---@param opts? {timeout?: number|string}
---@return string[]|nil
---@return dreamos.Error|nil
function llm.models(opts) end

return llm
