-- Ask a model a question and print the answer as it is written (streaming).
-- Needs an OpenAI-compatible server: by default Ollama on 127.0.0.1:11434. Install it from
-- https://ollama.com, then `ollama pull llama3.2`, then:
--   dreamos run examples/llm.lua "Why is the sky blue?"
-- Another server or model, without editing dreamos.toml:
--   DREAMOS_LLM_BASE_URL=http://127.0.0.1:8080/v1 DREAMOS_LLM_MODEL=qwen3 dreamos run examples/llm.lua
-- A server that is down, slow or missing the model is nil, err, not an exception.
local dreamos = require("dreamos")
local llm = require("dreamos.llm")

local model = dreamos.config.llm.model
if model == "" then
  model = "llama3.2"
end
local question = arg[1] or "In one sentence: what is Lua?"

local result, err = llm.chat {
  model = model,
  messages = {
    { role = "system", content = "Answer briefly." },
    { role = "user", content = question },
  },
  stream = function(text)
    io.write(text)
  end,
}
if not result then
  print("llm.chat failed: " .. tostring(err))
  if err.kind == "connect" then
    print("Is Ollama running? Start it with `ollama serve`.")
  elseif err.kind == "not_found" then
    print("Fetch the model with `ollama pull " .. model .. "`.")
  end
  os.exit(1)
end
print()
local tokens = result.usage and result.usage.total_tokens or "?"
print(("[%s, finish: %s, %s tokens]"):format(result.model, result.finish_reason, tokens))
