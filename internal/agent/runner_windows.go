//go:build windows

package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// NewRunner returns the runner of this OS, staging files in stagingDir.
//
// Not run on Windows where it was written (no Windows guest could be had):
// this file is cross-compiled and vetted (GOOS=windows); its logic lives
// in windows.go and is tested on Linux against a fake winOS.
func NewRunner(stagingDir string) (Runner, error) {
	if !filepath.IsAbs(stagingDir) {
		return nil, fmt.Errorf("staging directory %q must be an absolute path", stagingDir)
	}
	return &winRunner{dir: stagingDir, os: realWinOS{}, readFile: os.ReadFile}, nil
}

type realWinOS struct{}

type realJob struct {
	job windows.Handle
	cmd *exec.Cmd
}

// Start starts argv and puts it into a job object that kills what is
// left when closed. The process is assigned right after it starts: a
// child it spawns in that instant would escape the job (Go's os/exec
// cannot start it suspended and resume it); documented in docs/agent.md.
func (realWinOS) Start(argv []string, dir string, stdout, stderr io.Writer) (winJob, error) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("create a job object: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{}
	info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		return nil, fmt.Errorf("set up the job object: %w", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdin = nil // NUL
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{HideWindow: true}
	if err := cmd.Start(); err != nil {
		windows.CloseHandle(job)
		return nil, err
	}
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(cmd.Process.Pid))
	if err == nil {
		err = windows.AssignProcessToJobObject(job, h)
		windows.CloseHandle(h)
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		windows.CloseHandle(job)
		return nil, fmt.Errorf("put the installer into its job object: %w", err)
	}
	return &realJob{job: job, cmd: cmd}, nil
}

func (j *realJob) Wait() (int, error) {
	err := j.cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return -1, err
	}
	return j.cmd.ProcessState.ExitCode(), nil
}

// jobPIDList is JOBOBJECT_BASIC_PROCESS_ID_LIST with room for 1024 ids
// (Go lays it out as C does on 386 and amd64).
type jobPIDList struct {
	Assigned, InList uint32
	IDs              [1024]uintptr
}

// PIDs lists the processes still in the job.
func (j *realJob) PIDs() ([]int, error) {
	var l jobPIDList
	err := windows.QueryInformationJobObject(j.job, windows.JobObjectBasicProcessIdList,
		uintptr(unsafe.Pointer(&l)), uint32(unsafe.Sizeof(l)), nil)
	if err != nil && !errors.Is(err, windows.ERROR_MORE_DATA) {
		return nil, fmt.Errorf("list the job's processes: %w", err)
	}
	var out []int
	for i := 0; i < int(l.InList) && i < len(l.IDs); i++ {
		out = append(out, int(l.IDs[i]))
	}
	return out, nil
}

func (j *realJob) Terminate() error { return windows.TerminateJobObject(j.job, 1) }
func (j *realJob) Close() error     { return windows.CloseHandle(j.job) }

// PendingReboot names the pendingRebootKeys entries that exist.
func (realWinOS) PendingReboot() ([]string, error) {
	var out []string
	for _, full := range pendingRebootKeys {
		path := strings.TrimPrefix(full, `HKLM\`)
		if strings.HasSuffix(path, `\PendingFileRenameOperations`) {
			k, err := registry.OpenKey(registry.LOCAL_MACHINE, strings.TrimSuffix(path, `\PendingFileRenameOperations`), registry.QUERY_VALUE)
			if err != nil {
				continue
			}
			if _, _, err := k.GetStringsValue("PendingFileRenameOperations"); err == nil {
				out = append(out, full)
			}
			k.Close()
			continue
		}
		k, err := registry.OpenKey(registry.LOCAL_MACHINE, path, registry.QUERY_VALUE)
		if err == nil {
			out = append(out, full)
			k.Close()
		} else if !errors.Is(err, registry.ErrNotExist) {
			return nil, fmt.Errorf("open %s: %w", full, err)
		}
	}
	return out, nil
}

func (realWinOS) PowerShell(ctx context.Context, script string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "powershell", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command", script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("powershell %q: %w: %s", truncate(script, 40), err, truncate(stderr.String(), 500))
	}
	return out, nil
}

func (realWinOS) PowerOff() error {
	return exec.Command("shutdown", "/s", "/t", "0", "/f").Run()
}
