//go:build linux

package main

import "testing"

// A guest's console is hostile text: what reaches the user's terminal
// must carry no control sequence.
func TestSanitizeConsole(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "login: ", "login: "},
		{"systemd colours", "[\x1b[0;32m  OK  \x1b[0m] Started ssh.service", "[  OK  ] Started ssh.service"},
		{"CRLF and lone CR", "a\r\nb\rc", "a\nb\nc"},
		{"title change (OSC, BEL)", "x\x1b]0;pwned\x07y", "xy"},
		{"OSC ended by ST", "x\x1b]8;;http://e.example/\x1b\\link\x1b]8;;\x1b\\y", "xlinky"},
		{"two-byte escape", "\x1bcreset", "reset"},
		{"C0 and DEL", "a\x00b\x08c\x7fd\te", "abcd\te"},
		{"C1 control", "a\u009bb", "a\ufffdb"},
		{"invalid UTF-8", "a\xffb", "a\ufffdb"},
		{"unterminated CSI", "a\x1b[31", "a"},
		{"UTF-8 kept", "Grüße ✓", "Grüße ✓"},
	}
	for _, tt := range tests {
		if got := sanitizeConsole([]byte(tt.in)); got != tt.want {
			t.Errorf("%s: sanitizeConsole(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}
