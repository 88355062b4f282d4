-- KEYS[1] the semaphore. ARGV[1] limit, ARGV[2] lease seconds, ARGV[3] holder token.
--! include now.lua
--! include take_slot.lua
if take_slot(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]) then return 1 end
return 0
