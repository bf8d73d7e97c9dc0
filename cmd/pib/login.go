//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/client"
)

// credentials is what pib login keeps, in the user's config directory,
// mode 0600.
type credentials struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

func credentialsPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "pib", "credentials.json"), nil
}

func loadCredentials() credentials {
	var c credentials
	if p, err := credentialsPath(); err == nil {
		if data, err := os.ReadFile(p); err == nil {
			json.Unmarshal(data, &c)
		}
	}
	return c
}

// client returns an API client: server from --server/PIB_SERVER or the
// login file, token from PIB_TOKEN or the login file.
func (g *globals) client() *client.Client {
	saved := loadCredentials()
	server, token := g.server, os.Getenv("PIB_TOKEN")
	if server == "" {
		server = saved.Server
	}
	if token == "" && (g.server == "" || g.server == saved.Server) {
		token = saved.Token
	}
	return client.New(server, token)
}

func newLoginCommand(g *globals) *cobra.Command {
	var tokenFile string
	cmd := &cobra.Command{
		Use:   "login --server URL [--token-file FILE]",
		Short: "Save a server URL and API token for the client commands (the token is read from stdin or --token-file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.server == "" {
				return errors.New("say which server: pib login --server http://127.0.0.1:8080")
			}
			var raw []byte
			var err error
			if tokenFile != "" {
				raw, err = os.ReadFile(tokenFile)
			} else {
				fmt.Fprint(cmd.ErrOrStderr(), "API token: ")
				line, rerr := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				raw, err = []byte(line), rerr
				if len(raw) > 0 {
					err = nil
				}
			}
			if err != nil {
				return fmt.Errorf("read token: %w", err)
			}
			c := client.New(g.server, strings.TrimSpace(string(raw)))
			me, err := c.Whoami(cmd.Context())
			if err != nil {
				return fmt.Errorf("check token: %w", err)
			}
			p, err := credentialsPath()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			data, _ := json.Marshal(credentials{Server: c.Server, Token: c.Token})
			if err := os.WriteFile(p, data, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged in to %s as %s (%s); saved in %s\n", c.Server, me.Name, me.Role, p)
			return nil
		},
	}
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "read the token from this file (e.g. <data>/operator.token)")
	return cmd
}
