--[[
bbcache: the burst_buffer/lua script for Slurm (22.05 to 25.x).

Install: slurm.conf `BurstBufferType=burst_buffer/lua`, burst_buffer.conf
`Directive=BB`, and this file as `burst_buffer.lua` in the directory of
slurm.conf (Slurm looks for it there).  Design and status: docs/slurm.md.

Where these hooks run (Slurm's contract, verified on 22.05.8):
  - slurm_bb_job_process, slurm_bb_pools, slurm_bb_paths run inside slurmctld,
    as SlurmUser, with locks held: they must return within milliseconds and
    must not touch the network.
  - every other hook runs in slurmscriptd (a helper process of slurmctld) and
    is killed after the burst_buffer.conf timeouts (StageInTimeout,
    StageOutTimeout, OtherTimeout).
Every argument arrives as a string.  A hook returns slurm.SUCCESS or
slurm.ERROR and optionally a message: job_process's message is printed by
sbatch/salloc/srun; the others may end up in the job's Reason.
Arguments were added over the Slurm versions (job_info, a table, in 23.02+),
so every hook ends in `...`: an older or newer Slurm may pass more or fewer.
Debian's burst_buffer_lua.so embeds Lua 5.1: this file is Lua 5.1 (no
`goto`, io.popen():close() gives no exit status).

What each hook does (docs/slurm.md has the whole lifecycle):
  job_process      validates the #BB lines with `bbcache check-script` (the
                   same C parser as the CLI) and refuses the job with
                   "line N: <the line>: <reason>".
  data_in          `bbcache slurm data-in`: lists the origins as the user and
                   writes the job's snapshot (manifests) to state_dir; an
                   error holds the job with our reason.
  data_out         `bbcache slurm data-out`: reports the stage-out result the
                   nodes wrote; a failure marks the job with the reason.
  job_teardown     `bbcache slurm teardown`: removes the job's state.
  get_status       `bbcache slurm status`: `scontrol show bbstat`.
  the others       nothing to do on the controller (the node side is the
                   SPANK plugin bbcache_spank.so).

The bbcache binary: $BBCACHE_BIN in slurmctld's environment (the tests set
it), else the first of /usr/bin/bbcache, /usr/local/bin/bbcache, else
`bbcache` on slurmctld's PATH.
--]]

local script_name = "bbcache burst_buffer.lua"

local function file_exists(path)
	local f = io.open(path, "r")
	if f then
		f:close()
		return true
	end
	return false
end

local function bbcache_bin()
	local env = os.getenv("BBCACHE_BIN")
	if env and env ~= "" then
		return env
	end
	for _, p in ipairs({ "/usr/bin/bbcache", "/usr/local/bin/bbcache" }) do
		if file_exists(p) then
			return p
		end
	end
	return "bbcache"
end

-- Quote one argument for /bin/sh.
local function shq(s)
	return "'" .. string.gsub(tostring(s), "'", "'\\''") .. "'"
end

-- " --conf FILE" when slurmctld's environment names a bbcache.conf.
local function conf_arg()
	local c = os.getenv("BBCACHE_CONF")
	if c and c ~= "" then
		return " --conf " .. shq(c)
	end
	return ""
end

-- "bbcache slurm SUB --job ID --conf FILE" (the start of a command line).
local function slurm_cmd(sub, job_id)
	return shq(bbcache_bin()) .. " slurm " .. sub .. " --job " .. shq(job_id) .. conf_arg()
end

-- The last non-empty line of a command's output (its error message).
local function last_line(out)
	local last = ""
	for l in string.gmatch(out or "", "[^\n]+") do
		last = l
	end
	return (string.gsub(last, "^bbcache: ", ""))
end

-- Run a shell command; return its exit status and its output (stdout and
-- stderr together).  Lua 5.1's popen gives no status, so the command
-- appends it as a last line.
local function run(cmd)
	local p = io.popen(cmd .. " 2>&1; echo \"bbcache-rc=$?\"", "r")
	if not p then
		return 127, "cannot run " .. cmd
	end
	local out = p:read("*a") or ""
	p:close()
	local body, rc = string.match(out, "^(.-)\n?bbcache%-rc=(%d+)\n?$")
	if not rc then
		return 127, out
	end
	return tonumber(rc), body
end

-- The text of line n of a file (nil when it has fewer lines).
-- One step of a job: run cmd; log its output (info on success when on_ok
-- makes a line of it, error on failure) and return what the hook returns:
-- on failure, reason and the last line bbcache said (Slurm shows it as the
-- job's reason).
local function run_step(job_id, step, cmd, reason, on_ok)
	local rc, out = run(cmd)
	if rc == 0 then
		if on_ok then
			slurm.log_info("%s: job %s: %s: %s", script_name, tostring(job_id), step, on_ok(out))
		end
		return slurm.SUCCESS
	end
	slurm.log_error("%s: job %s: %s failed: %s", script_name, tostring(job_id), step, out)
	local msg = last_line(out)
	if rc == 127 or rc == 126 then
		msg = "the bbcache burst buffer is misconfigured (cannot run bbcache); ask the admins"
	end
	return slurm.ERROR, reason .. msg
end

local function line_of(path, n)
	local i = 0
	local f = io.open(path, "r")
	if not f then
		return nil
	end
	for l in f:lines() do
		i = i + 1
		if i == n then
			f:close()
			return l
		end
	end
	f:close()
	return nil
end

-- The user name of a numeric uid (Lua has no getpwuid; getent is local
-- and fast: it reads /etc/passwd or nscd, no network for local users).
local function user_name(uid)
	local rc, out = run("getent passwd " .. shq(uid))
	if rc == 0 then
		local name = string.match(out, "^([^:]+):")
		if name then
			return name
		end
	end
	return tostring(uid)
end

--[[ slurm_bb_job_process(job_script, uid, gid, [job_info], ...)
Synchronous, in slurmctld, at submission (sbatch/salloc/srun).  DONE.
The job id is not known yet: check-script expands %j/$BB_JOB_DIR with a
placeholder id, which cannot change whether a path lies under $BB_JOB_DIR.
An error rejects the submission; the message is what the user sees. --]]
function slurm_bb_job_process(job_script, uid, gid, ...)
	if tostring(uid) == "0" then
		return slurm.ERROR, "bbcache: root cannot use burst buffers (#BB lines): submit as a user"
	end
	local cmd = shq(bbcache_bin()) .. " check-script" .. conf_arg() .. " --job-id 0 --user " ..
		shq(user_name(uid)) .. " " .. shq(job_script)
	local rc, out = run(cmd)
	if rc == 0 then
		return slurm.SUCCESS
	end
	-- "bbcache: <script path>: line N: reason" -> "line N: <text>: reason"
	local msg = string.match(out, "([^\n]*)\n*$") or out
	local n, reason = string.match(msg, "line (%d+): (.*)$")
	if n then
		local text = line_of(job_script, tonumber(n)) or ""
		text = string.gsub(text, "^%s+", "")
		msg = "line " .. n .. ": " .. text .. ": " .. reason
	elseif rc == 127 or rc == 126 then
		slurm.log_error("%s: cannot run %s: %s", script_name, cmd, out)
		msg = "the bbcache burst buffer is misconfigured (cannot run bbcache); ask the admins"
	else
		msg = string.gsub(msg, "^bbcache: ", "")
	end
	slurm.log_info("%s: job_process uid %s: rejected: %s", script_name, tostring(uid), msg)
	return slurm.ERROR, "bbcache: invalid #BB directive: " .. msg
end

--[[ slurm_bb_pools(...)
In slurmctld, at startup and periodically; must be fast.  STUB: returns no
pools, so Slurm does not account burst-buffer capacity (our space is
node-local and enforced by the agent).  `pool=`/`capacity=` stay reserved. --]]
function slurm_bb_pools(...)
	return slurm.SUCCESS
end

--[[ slurm_bb_setup(job_id, uid, gid, pool, bb_size, job_script, [job_info], ...)
slurmscriptd, job pending, before data_in.  Records the job's owner
(state_dir/job.ID/owner): Slurm 22.05 passes uid and gid to setup but not
to data_in. --]]
function slurm_bb_setup(job_id, uid, gid, pool, bb_size, job_script, ...)
	return run_step(job_id, "setup",
		slurm_cmd("setup", job_id) .. " --uid " .. shq(uid) .. " --gid " .. shq(gid),
		"bbcache setup: ")
end

--[[ slurm_bb_data_in(job_id, job_script, [uid, gid, job_info], ...)
slurmscriptd (killed after StageInTimeout), job pending, no nodes yet.
`bbcache slurm data-in` lists every stage_in origin as the user (their
credentials, never passed here) and writes the job's manifests -- its
consistent snapshot -- to state_dir/job.ID.  An error holds the job with our
reason (`scontrol show job`: Reason=...). --]]
function slurm_bb_data_in(job_id, job_script, uid, gid, ...)
	-- 23.02+ pass uid and gid; 22.05 does not (setup recorded them).
	local cmd = slurm_cmd("data-in", job_id)
	if tonumber(uid) and tonumber(gid) then
		cmd = cmd .. " --uid " .. shq(uid) .. " --gid " .. shq(gid)
	end
	cmd = cmd .. " " .. shq(job_script)
	return run_step(job_id, "data_in", cmd, "bbcache stage-in: ",
		function(out) return (string.gsub(out, "\n", "; ")) end)
end

--[[ slurm_bb_test_data_in(job_id, job_script, uid, gid, [job_info], ...)
24.05+: polled after data_in; returning (SUCCESS, "BUSY") keeps the job
pending.  STUB: data_in is synchronous, so staging is never BUSY here. --]]
function slurm_bb_test_data_in(job_id, job_script, uid, gid, ...)
	return slurm.SUCCESS
end

--[[ slurm_bb_real_size(job_id, uid, gid, [job_info], ...)
Only called when a pool was requested; we define none.  STUB. --]]
function slurm_bb_real_size(job_id, uid, gid, ...)
	return slurm.SUCCESS
end

--[[ slurm_bb_paths(job_id, job_script, path_file, uid, gid, [job_info], ...)
In slurmctld (fast), job RUNNING+CONFIGURING.  Nothing: BB_JOB_DIR is set in
every task by the SPANK plugin (task_init), which knows the node's
nvme_root and whether the job's directory exists there. --]]
function slurm_bb_paths(job_id, job_script, path_file, uid, gid, ...)
	return slurm.SUCCESS
end

--[[ slurm_bb_pre_run(job_id, job_script, uid, gid, [job_info], ...)
slurmscriptd; the job does not start until it returns; an error requeues
the job.  Nothing: the node side (the job's directory, the agents, the wait
of mode=wait) is the SPANK plugin's, on the nodes. --]]
function slurm_bb_pre_run(job_id, job_script, uid, gid, ...)
	return slurm.SUCCESS
end

--[[ slurm_bb_post_run(job_id, job_script, uid, gid, [job_info], ...)
slurmscriptd, after the job's script ended.  Nothing: stage-out already ran
on the batch node (SPANK, at the end of the batch step). --]]
function slurm_bb_post_run(job_id, job_script, uid, gid, ...)
	return slurm.SUCCESS
end

--[[ slurm_bb_data_out(job_id, job_script, uid, gid, [job_info], ...)
slurmscriptd, after post_run.  Stage-out itself ran on the node where the
data is (the SPANK plugin, when the batch script ended); this reports the
result it wrote, and fails with its reason (the job is marked; the data
stays in the job's directory on the node). --]]
function slurm_bb_data_out(job_id, job_script, uid, gid, ...)
	return run_step(job_id, "data_out", slurm_cmd("data-out", job_id), "bbcache ", last_line)
end

--[[ slurm_bb_test_data_out(job_id, job_script, uid, gid, [job_info], ...)
24.05+: polled after data_out; (SUCCESS, "BUSY") keeps the job in
stage-out.  STUB: never BUSY. --]]
function slurm_bb_test_data_out(job_id, job_script, uid, gid, ...)
	return slurm.SUCCESS
end

--[[ slurm_bb_job_teardown(job_id, job_script, hurry, uid, gid, [job_info], ...)
slurmscriptd, after the job ended or was cancelled (hurry == "true" after
scancel).  Removes the controller-side state of the job; there is nothing
to wait for either way (the nodes clean themselves in job_epilog). --]]
function slurm_bb_job_teardown(job_id, job_script, hurry, uid, gid, ...)
	local cmd = slurm_cmd("teardown", job_id)
	if tostring(hurry) == "true" then
		cmd = cmd .. " --hurry"
	end
	return run_step(job_id, "teardown", cmd, "bbcache teardown: ")
end

--[[ slurm_bb_get_status(...)
slurmscriptd, for `scontrol show bbstat [ARGS]`.  22.05 passes only ARGS;
23.02+ prepends the caller's uid and gid, so the arguments are taken as
`...` whatever their shape; a job id among them selects that job.  One line
per job with state: its user, what
data_in listed, live progress when its agent runs on this host, and its
stage-out result. --]]
function slurm_bb_get_status(...)
	-- `scontrol show bbstat [JOBID]`: 22.05 passes ("JOBID"); 23.02+
	-- pass (uid, gid, "JOBID").  One argument, or a third one, that is a
	-- number, selects that job; anything else shows every job.
	local args = { ... }
	local want = nil
	if #args == 1 then
		want = args[1]
	elseif #args >= 3 then
		want = args[3]
	end
	local cmd = shq(bbcache_bin()) .. " slurm status" .. conf_arg()
	if want and string.match(tostring(want), "^%d+$") then
		cmd = cmd .. " --job " .. shq(want)
	end
	local rc, out = run(cmd)
	if rc ~= 0 then
		return slurm.ERROR, "bbcache status: " .. last_line(out) .. "\n"
	end
	return slurm.SUCCESS, out .. "\n"
end
