-- Argo CD health check for the compute.gallery.dev kinds (Gallery, ImageDefinition,
-- ImageVersion, VirtualMachine, VirtualMachineScaleSet). Argo CD runs it with `obj` bound to
-- the live object.
--
-- Reads the kstatus-style conditions the operator writes on every reconcile:
--   Stalled=True                   -> Degraded   (nothing changes without an edit or outside help)
--   Ready=True                     -> Healthy
--   anything else                  -> Progressing (creating, replicating, waiting for a parent,
--                                                  retrying a transient Azure error)
-- A status older than the spec (observedGeneration < metadata.generation) is Progressing: the
-- operator has not yet acted on the latest edit.
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }

if obj.status == nil or obj.status.conditions == nil then
  return hs
end

local generation = obj.metadata.generation
local function current(observed)
  return generation == nil or observed == nil or observed >= generation
end

if not current(obj.status.observedGeneration) then
  hs.message = "The operator has not yet acted on generation " .. tostring(generation)
  return hs
end

local ready = nil
local stalled = nil
for _, condition in ipairs(obj.status.conditions) do
  if current(condition.observedGeneration) then
    if condition.type == "Ready" then
      ready = condition
    elseif condition.type == "Stalled" then
      stalled = condition
    end
  end
end

local function describe(condition)
  local text = condition.reason or ""
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if ready ~= nil then
  hs.message = describe(ready)
  if ready.status == "True" then
    hs.status = "Healthy"
  end
end
return hs
