package safetext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Nothing a terminal acts on survives, the text stays readable, and the
// length is bounded at a character boundary.
func TestLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"NO [AUTHENTICATIONFAILED] bad", "NO [AUTHENTICATIONFAILED] bad"},
		{"NO \x1b[2J\x1b]0;pwned\x07gone", "NO \uFFFD[2J\uFFFD]0;pwned\uFFFDgone"},
		{"first\r\nsecond\tthird   fourth", "first second third fourth"},
		{"hidden\rshown", "hidden shown"},
		{"c1 \u009b31m and DEL \x7f", "c1 \uFFFD31m and DEL \uFFFD"},
		{"bidi \u202eevil\u2066", "bidi \uFFFDevil\uFFFD"},
		{"bad utf8 \xff\xfe", "bad utf8 \uFFFD"},
		{"  leading and trailing  ", "leading and trailing"},
		{"Grüße ✓", "Grüße ✓"},
	} {
		if got := Line(c.in, 0); got != c.want {
			t.Errorf("Line(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	long := strings.Repeat("é", 100) // 200 bytes
	got := Line(long, 51)
	if len(got) > 51 || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") {
		t.Errorf("Line of 200 bytes bounded to 51: %q (%d bytes)", got, len(got))
	}
}

func TestText(t *testing.T) {
	in := "Last error: NO \x1b[31mred\x1b[0m\r\n\nnext line\x07"
	want := "Last error: NO \uFFFD[31mred\uFFFD[0m\n\nnext line\uFFFD"
	if got := Text(in, 0); got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
	if got := Text(strings.Repeat("a\n", 1000), 100); len(got) > 100 {
		t.Errorf("Text bounded to 100: %d bytes", len(got))
	}
}
