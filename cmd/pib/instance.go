//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/instance"
)

func newInstanceCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "instance", Aliases: []string{"instances"},
		Short: "Launch your images as machines under QEMU and reach them over SSH (through the server named by --server / PIB_SERVER, or locally in the foreground)"}
	cmd.AddCommand(newInstanceLaunchCommand(g), newInstanceListCommand(g), newInstanceConsoleCommand(g),
		newInstanceStopCommand(g), newInstanceRemoveCommand(g))
	return cmd
}

// sshHint is how to log in to inst: the port is on the loopback of the
// machine that runs the instance (the server's, for a server's instance).
func sshHint(inst *instance.Instance, keyFile string) string {
	key := ""
	if keyFile != "" {
		if priv := trimPub(keyFile); priv != "" {
			key = " -i " + priv
		}
	}
	return fmt.Sprintf("ssh%s -p %d debian@127.0.0.1", key, inst.SSHPort)
}

// trimPub names the private key beside a public key file (id_ed25519 for
// id_ed25519.pub), if it is there.
func trimPub(pub string) string {
	priv, ok := strings.CutSuffix(pub, ".pub")
	if !ok {
		return ""
	}
	if _, err := os.Stat(priv); err != nil {
		return ""
	}
	return priv
}

func newInstanceLaunchCommand(g *globals) *cobra.Command {
	var keyFile, memory string
	var cpus int
	var wait, asJSON bool
	var waitFor time.Duration
	cmd := &cobra.Command{
		Use:   "launch IMAGE [--ssh-key FILE] [--memory 1G] [--cpus 2] [--wait]",
		Short: "Boot one of your images (a build result, a private image, or an operator's base image) as a machine",
		Long: `Boot an image you own under QEMU: a copy-on-write disk over the image's
bootable disk, a cloud-init NoCloud seed carrying your SSH public key and a
hostname, and user-mode networking whose only way in is the guest's SSH port
forwarded to 127.0.0.1:PORT on the machine that runs it. Log in as the
image's default user (debian on pib's Debian images).

With --server (or PIB_SERVER) the server runs and supervises the instance
until pib instance rm or the server's shutdown; each account has an instance
limit. Without a server, the instance runs on this machine in the
foreground, from the local data directory, until Ctrl-C.

The image must be bootable: bootstrapped without --minimal, or built on such a
base image.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				keyFile = defaultSSHKey()
				if keyFile == "" {
					return fmt.Errorf("no SSH public key: pass --ssh-key FILE (make one with ssh-keygen -t ed25519); without one nobody can log in")
				}
			}
			key, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("read the SSH public key: %w", err)
			}
			mem, err := parseDiskSize(memory)
			if err != nil {
				return fmt.Errorf("--memory %q: %w", memory, err)
			}
			req := api.LaunchRequest{Image: args[0], SSHKey: string(key), MemoryMB: int(mem >> 20), CPUs: cpus}
			if g.server == "" {
				return launchLocal(cmd, g, req, keyFile)
			}
			c := g.client()
			inst, err := c.LaunchInstance(cmd.Context(), req)
			if err != nil {
				return err
			}
			if wait {
				if inst, err = waitSSH(cmd.Context(), c, inst, waitFor); err != nil {
					return err
				}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), inst)
			}
			printInstance(cmd.OutOrStdout(), inst)
			fmt.Fprintf(cmd.ErrOrStderr(), "on the server's machine: %s\n", sshHint(inst, keyFile))
			if !inst.SSHReady {
				fmt.Fprintf(cmd.ErrOrStderr(), "it is booting: pib instance ls shows SSH READY once it answers; pib instance console %s shows the boot\n", inst.ID)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "ssh-key", "", "SSH public key file to log in with (default: ~/.ssh/id_ed25519.pub, id_ecdsa.pub or id_rsa.pub, the first that exists)")
	f.StringVar(&memory, "memory", "1G", "guest memory, e.g. 1G or 512M")
	f.IntVar(&cpus, "cpus", 2, "virtual CPUs")
	f.BoolVar(&wait, "wait", false, "with a server: wait until the guest's SSH server answers")
	f.DurationVar(&waitFor, "wait-timeout", 10*time.Minute, "how long --wait waits for SSH")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func defaultSSHKey() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	for _, n := range []string{"id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"} {
		p := filepath.Join(home, ".ssh", n)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// waitSSH polls the server until the instance's SSH answers, or it
// stopped, or d passed.
func waitSSH(ctx context.Context, c *client.Client, inst *instance.Instance, d time.Duration) (*instance.Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := client.Wait(ctx, time.Second, func() (bool, error) {
		var err error
		inst, err = c.Instance(ctx, inst.ID)
		return err == nil && (inst.SSHReady || inst.State == "stopped"), err
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for instance %s's SSH: %w (pib instance console %s shows how far it booted)", inst.ID, err, inst.ID)
	}
	if inst.State == "stopped" {
		return nil, fmt.Errorf("instance %s stopped before its SSH answered: pib instance console %s shows why", inst.ID, inst.ID)
	}
	return inst, nil
}

// launchLocal runs the instance in this process, from the local data
// directory, until Ctrl-C or the guest powers off; then it is removed.
func launchLocal(cmd *cobra.Command, g *globals, req api.LaunchRequest, keyFile string) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	is, closeImages, err := g.openImages(ctx)
	if err != nil {
		return err
	}
	defer closeImages()
	im, err := is.Get(ctx, req.Image)
	if err != nil {
		return err
	}
	// Its own directory: a pib serve on the same data directory keeps
	// its instances in <data>/instances and empties it at start.
	dir := filepath.Join(g.dataDir, "cache", "instances-local-"+strconv.Itoa(os.Getpid()))
	m, err := instance.New(instance.Config{Images: is, Dir: dir})
	if err != nil {
		return err
	}
	defer func() {
		m.Close()
		os.Remove(dir)
	}()
	fmt.Fprintf(cmd.ErrOrStderr(), "preparing %s's disk (the first launch of an image makes it, ~15 s)…\n", im.ID)
	inst, err := m.Launch(ctx, instance.LaunchOptions{Owner: im.Owner, Image: im.ID, SSHKey: req.SSHKey, MemoryMB: req.MemoryMB, CPUs: req.CPUs})
	if err != nil {
		return err
	}
	printInstance(cmd.OutOrStdout(), inst)
	fmt.Fprintf(cmd.ErrOrStderr(), "booting; log in with: %s\nCtrl-C stops and removes it\n", sshHint(inst, keyFile))
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	announced := false
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(cmd.ErrOrStderr(), "stopping and removing", inst.ID)
			return nil
		case <-tick.C:
		}
		cur, err := m.Get(im.Owner, inst.ID)
		if err != nil {
			return err
		}
		if cur.SSHReady && !announced {
			announced = true
			slog.Info("SSH answers", "instance", inst.ID, "port", inst.SSHPort)
		}
		if cur.State == "stopped" {
			console, _ := m.Console(im.Owner, inst.ID)
			return fmt.Errorf("instance %s stopped (the guest powered off or QEMU exited); its console ended with:\n%s", inst.ID, lastLines(sanitizeConsole(console), 20))
		}
	}
}

func printInstance(w io.Writer, inst *instance.Instance) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\t%s\nIMAGE\t%s\nSTATE\t%s\nSSH\t127.0.0.1:%d (ready: %v)\nHOSTNAME\t%s\nMEMORY\t%d MiB\nCPUS\t%d\n",
		inst.ID, inst.ImageID, inst.State, inst.SSHPort, inst.SSHReady, inst.Hostname, inst.MemoryMB, inst.CPUs)
	tw.Flush()
}

func newInstanceListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List your instances on the server, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().Instances(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tIMAGE\tSTATE\tSSH PORT\tSSH READY\tHOSTNAME\tCREATED")
			for _, inst := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%v\t%s\t%s\n", inst.ID, inst.ImageID, inst.State, inst.SSHPort, inst.SSHReady, inst.Hostname, when(&inst.Created))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newInstanceConsoleCommand(g *globals) *cobra.Command {
	var raw bool
	cmd := &cobra.Command{
		Use:   "console ID",
		Short: "Print the last part of an instance's serial console (boot messages, login prompt)",
		Long: `Print the last part (up to 1 MiB) of an instance's serial console. The guest
wrote it, so terminal control sequences and other control characters are
removed before it is printed; --raw prints the bytes as they came.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var buf bytes.Buffer
			if err := g.client().InstanceConsole(cmd.Context(), args[0], &buf); err != nil {
				return err
			}
			if raw {
				_, err := cmd.OutOrStdout().Write(buf.Bytes())
				return err
			}
			_, err := io.WriteString(cmd.OutOrStdout(), sanitizeConsole(buf.Bytes()))
			return err
		},
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "print the console's bytes unchanged")
	return cmd
}

func newInstanceStopCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stop ID",
		Short: "Power an instance off (its disk stays until pib instance rm)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := g.client().StopInstance(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", inst.ID, inst.State)
			return nil
		},
	}
}

func newInstanceRemoveCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm ID",
		Aliases: []string{"remove"},
		Short:   "Stop an instance and delete its disk",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := g.client().RemoveInstance(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s removed\n", inst.ID)
			return nil
		},
	}
}

// sanitizeConsole makes guest console output safe for a terminal: escape
// sequences (CSI, OSC and other ESC-introduced ones) and control
// characters but newline and tab are dropped, carriage returns become
// line ends, and invalid UTF-8 becomes U+FFFD.
func sanitizeConsole(b []byte) string {
	var out bytes.Buffer
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == 0x1b: // ESC: skip the whole sequence
			i = skipEscape(b, i)
			continue
		case c == '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
				continue
			}
			out.WriteByte('\n')
		case c == '\n' || c == '\t':
			out.WriteByte(c)
		case c < 0x20 || c == 0x7f:
		case c < utf8.RuneSelf:
			out.WriteByte(c)
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError || unicode.IsControl(r) {
				out.WriteRune(utf8.RuneError)
			} else {
				out.WriteRune(r)
			}
			i += n
			continue
		}
		i++
	}
	return out.String()
}

// skipEscape returns the index after the escape sequence at b[i] (ESC).
func skipEscape(b []byte, i int) int {
	i++
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '[': // CSI: parameters and intermediates, then a final byte 0x40–0x7e
		for i++; i < len(b); i++ {
			if b[i] >= 0x40 && b[i] <= 0x7e {
				return i + 1
			}
		}
		return i
	case ']', 'P', '^', '_', 'X': // OSC, DCS, PM, APC, SOS: until BEL or ST (ESC \)
		for i++; i < len(b); i++ {
			if b[i] == 0x07 {
				return i + 1
			}
			if b[i] == 0x1b && i+1 < len(b) && b[i+1] == '\\' {
				return i + 2
			}
		}
		return i
	default: // a two-byte sequence (ESC c, ESC 7, ESC ( B's first part…)
		return i + 1
	}
}

func lastLines(s string, n int) string {
	lines := bytes.Split([]byte(s), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
