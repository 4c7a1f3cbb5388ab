---@meta dreamos.discord
-- The Discord bot of `dreamos serve` (needs `[discord]` in dreamos.toml). Outside the daemon,
-- or when the bot is disabled, every function returns nil, err (kind "unavailable").
-- What a script adds belongs to it: when its agent stops (its Lua state ends), its commands
-- and listeners are removed and the bot registers the remaining commands again.

---@class dreamos.discord
local discord = {}

---@class dreamos.discord.Option
---@field name string 1-32 lowercase letters, digits, - or _
---@field type? "string"|"integer"|"number"|"boolean"|"user"|"channel"|"role" default "string"
---@field description? string default: the name
---@field required? boolean default false

---@class dreamos.discord.Permissions
---@field users? string[] user ids allowed (with roles: either matches)
---@field roles? string[] role ids allowed
---@field channels? string[] channels the command may be used in
---@field admin? boolean when no users/roles are listed: only [discord.admins] (default false)
---@field cooldown? string|number per-user cooldown ("30s"); default [discord] cooldown

---@class dreamos.discord.Context
---@field user {id: string, name: string, roles: string[]}
---@field channel string the channel id
---@field command string
---@field subcommand string|nil
---@field options table<string, any> typed option values by name (ids as strings)

---@class dreamos.discord.Command
---@field name string
---@field description? string
---@field options? dreamos.discord.Option[]
---@field permissions? dreamos.discord.Permissions refusals are ephemeral and name the rule
---@field defer? boolean acknowledge at once ("thinking..."); default false (deferred anyway after 2 s)
---@field handler fun(ctx: dreamos.discord.Context): string|table text, an embed table, or {content=, embed=, ephemeral=}

--- Adds a slash command handled by this script (replacing one of the same name). Raises
--- for a bad definition or a built-in's name.
---@param spec dreamos.discord.Command
---@return true|nil
---@return dreamos.Error|nil
function discord.command(spec) end

--- Posts to a channel: text (at most 2,000 characters) or an embed table. Queued durably:
--- it is posted once Discord is reachable, also after a restart.
---@param channel string the channel id
---@param message string|table
---@return true|nil
---@return dreamos.Error|nil
function discord.send(channel, message) end

---@class dreamos.discord.Message
---@field channel string
---@field content string
---@field user {id: string, name: string}
---@field captures string[] what the pattern captured (or the whole match)

--- Calls handler for every message whose content matches the Lua pattern. Needs
--- `[discord] message_content = true` (and the intent enabled in the Developer Portal) to
--- see the text of messages that do not mention the bot.
---@param pattern string a Lua pattern
---@param handler fun(msg: dreamos.discord.Message)
---@return true|nil
---@return dreamos.Error|nil
function discord.on_message(pattern, handler) end

return discord
