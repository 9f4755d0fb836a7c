-- A mixed Lua workload: recursive calls, table inserts and sorts, string building and
-- pattern matching, closures. `lua bench.lua N` scales it (N = 1 is tiny).
local n = tonumber(arg and arg[1]) or 20

local function fib(k) if k < 2 then return k end return fib(k - 1) + fib(k - 2) end

local function tables(count)
  local t = {}
  local seed = 42
  for i = 1, count do
    seed = (seed * 1103515245 + 12345) % 2147483648
    t[i] = seed % 100000
  end
  table.sort(t)
  local sum = 0
  for i = 1, #t, 7 do sum = sum + t[i] end
  return sum
end

local function strings(count)
  local parts = {}
  for i = 1, count do parts[#parts + 1] = string.format("%d:%x;", i, i * 31) end
  local s = table.concat(parts)
  local hits = 0
  for a, b in s:gmatch("(%d+):(%x+);") do
    if tonumber(b, 16) % 3 == 0 then hits = hits + #a end
  end
  return #s, hits
end

local function closures(count)
  local acc = 0
  local adders = {}
  for i = 1, 16 do adders[i] = function(x) return x + i end end
  for i = 1, count do acc = adders[i % 16 + 1](acc) % 1000003 end
  return acc
end

print("fib", fib(18 + math.floor(math.log(n, 2))))
print("tables", tables(2000 * n))
print("strings", strings(1000 * n))
print("closures", closures(20000 * n))
