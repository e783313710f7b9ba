package remotepull

import (
	"regexp"
	"testing"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

func TestBarrierTimeoutDocumented(t *testing.T) {
	testlib.CheckDocumented(t, "..", regexp.MustCompile(`does not answer within (\d+) s fails the batch`), int(barrierTimeout.Seconds()))
}
