package app

// FieldError is invalid input; Field names the offending field with a
// JSON-path-like name ("image", "ports[1].published", `labels["x"]`) and
// Message says what is wrong and what is allowed. It mirrors auth.FieldError:
// the API maps both to the same problem response.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + " " + e.Message }
