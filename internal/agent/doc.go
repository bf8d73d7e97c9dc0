// Package agent is pib's guest agent and its protocol: the host side
// (Client) drives a `pib agent` (Serve) inside a vm build's guest over a
// virtio-serial port, with no network.
//
// # Protocol (version 1)
//
// A stream of frames in both directions. A frame is a 4-byte big-endian
// length, then that many bytes of UTF-8 JSON: {"type": T, "body": {...}}.
// A length of 0 or over MaxFrame (1 MiB) ends the session before a byte of
// the body is allocated; bodies are decoded strictly (unknown fields,
// trailing data and invalid UTF-8 are refused) and validated per type.
//
//	host → guest          guest → host
//	hello {version}       hello {version, os, arch}    (or error)
//	put {name,mode,size}  ok | error
//	data {data} …         (none: size bytes in chunks ≤ ChunkSize)
//	put_end {sha256}      ok | error (size or SHA-256 mismatch)
//	run {installer,timeout}
//	                      output {time,stream,data} …, power {…}?, then
//	                      result {exit_code,signal,findings} | error
//	shutdown              ok, then the guest powers off
//
// The host is request-driven and accepts only the replies its request
// allows, in order: anything else (unknown types, an output outside a
// run, a result after an ok) is a protocol error that ends the session.
// Every Client method honours its context; since a read or write on the
// port cannot be abandoned, a context that ends closes the connection (if
// it is an io.Closer) and the Client is unusable afterwards.
//
// # Hostile guest (T2)
//
// The guest runs the installer as root, so everything it sends is hostile
// data. The host keeps at most two frames in memory, at most
// MaxOutputKept (16 MiB) of output per run (the rest is counted in
// RunResult.OutputDropped, with one note on the "pib" stream), at most
// MaxFindings findings with bounded texts, and refuses unknown rule IDs,
// streams and power verbs. FuzzClientFrames feeds arbitrary bytes as the
// guest's side of a run.
//
// # Rules in the guest
//
// The installer runs in the staging directory with stdin on /dev/null, in
// a session of its own (no terminal), with a fixed environment. The Linux
// runner words every finding through internal/procs, as the sandbox does,
// so one installer gives the same findings on both backends:
//   - I1/I7: at the time limit, the processes of the installer blocked in
//     read(2) are named ("may be waiting for input"), then killed.
//   - I3: the installer starts in a cgroup v2 child of the agent's cgroup
//     (CLONE_INTO_CGROUP); what is left in it at exit is named by command
//     line, then killed with cgroup.kill. Where no cgroup v2 child can be
//     had (a hybrid host, an old kernel) the agent, a child subreaper,
//     walks the process tree below itself instead; the build log's "pib"
//     lines say which path ran.
//   - I4: the exit status or killing signal.
//   - I5: wrappers for reboot, halt, poweroff, shutdown, init, telinit and
//     systemctl (internal/power, the sandbox's) come first in PATH; one
//     that runs sends a "power" message to the host at once, stops the
//     installer there, and the result has the sandbox's I5 finding. A
//     reboot(2) call, or a real reboot command by absolute path, takes the
//     guest down: the host's Run returns ErrGuestGone (with the last power
//     event, if any) and the VM backend words the I5 finding. When init
//     stops the agent mid-run (a real reboot on its way), the agent sends
//     an Inferred power event first and ends the session.
//   - I2: internal/netwatch's DNS responder and connection recorder (the
//     sandbox's) run in the guest's root network namespace for the
//     installer's duration, with /etc/resolv.conf bind-mounted to point at
//     it; the guest has no NIC (QEMU -nic none), so loopback is all there
//     is. Routes, the nftables table and the bind mount are removed again
//     before the result is sent.
//   - I6: netwatch.Snapshot before and after (links, addresses, routes,
//     rules, nftables), and resolv.conf's content. Network configuration
//     files on disk are the host's to check, in the disk's difference.
//
// The installer's cgroup is a child of the agent's: the agent's unit
// should say Delegate=yes so systemd leaves that subtree to it.
//
// # Windows
//
// The Windows runner (windows.go: the logic; runner_windows.go: the calls
// into Windows through golang.org/x/sys/windows) runs .msi through
// msiexec /i FILE /qn /norestart /l*v LOG (the log is sent on the "pib"
// stream), .ps1 through powershell -NoProfile -NonInteractive
// -ExecutionPolicy Bypass -File, .bat through cmd /c and .exe directly,
// in a job object (I3: left processes named by command line from
// Win32_Process, then TerminateJobObject). I5 from exit codes 3010 and
// 1641 and from the pending-reboot registry entries appearing; I6 from
// Get-NetRoute, Get-NetFirewallRule and Get-NetIPInterface as JSON before
// and after, diffed by netwatch.Diff. At the time limit Windows shows no
// "blocked reading stdin", so the I7 finding only says input may be
// awaited; no separate I1 finding. No I2 recorder runs on Windows (the
// guest has no NIC: connections fail and are not named).
//
// No Windows guest could be run where this was written. What ran: the
// runner's logic on Linux against a fake of the winOS interface, with
// ConvertTo-Json output written by hand after its documented shape
// (testdata/windows); GOOS=windows go build and vet (TestBuildsForWindows).
// What did not: runner_windows.go itself (job objects, registry,
// PowerShell, the virtio-serial port \\.\Global\org.pib.agent.0). The
// installer is put into its job object just after it starts: a child it
// spawns in that instant escapes the job.
package agent
