package api

import (
	"errors"
	"fmt"

	"github.com/musubi-fabric/musubi/node/admission"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrTokens: the tokens file is malformed.
	ErrTokens = errors.New("api: bad tokens file")
	// ErrAccount: an account record or request is malformed.
	ErrAccount = errors.New("api: invalid account")
	// ErrAccountExists: the account (or its uid) already exists.
	ErrAccountExists = errors.New("api: account already exists")
	// ErrNoAccount: no such account.
	ErrNoAccount = errors.New("api: no such account")
	// ErrConfig: a server or client configuration is invalid.
	ErrConfig = errors.New("api: invalid configuration")
)

// Error is the JSON body of every error response, and the error the
// Client returns for one.
type Error struct {
	// Status is the HTTP status (not in the body).
	Status int `json:"-"`
	// Message says what went wrong; Hint what to do next.
	Message string `json:"error"`
	Hint    string `json:"hint,omitempty"`
	// Refusal explains a refused reservation (409).
	Refusal *admission.Refusal `json:"refusal,omitempty"`
}

func (e *Error) Error() string {
	s := e.Message
	if e.Status != 0 {
		s = fmt.Sprintf("%s (HTTP %d)", s, e.Status)
	}
	return s
}
