package testlib

import "testing"

func TestDocumentedTestsExist(t *testing.T) { CheckTestsExist(t, "../..") }
