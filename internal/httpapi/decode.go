package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 1 << 20

// DecodeJSON reads r's body into v: one JSON object, no unknown fields, no
// trailing data, at most MaxBodyBytes. An empty body is accepted only when
// allowEmpty is set (v keeps its zero value).
func DecodeJSON(r *http.Request, v any, allowEmpty bool) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: "Request body too large", Details: fmt.Sprintf("the limit is %d bytes", tooBig.Limit)}
		}
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Message: "Could not read request body", Details: err.Error()}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Message: "Request body is required", Details: "send a JSON object"}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/json") {
			return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia, Message: "Unsupported content type", Details: "send Content-Type: application/json"}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Message: "Malformed JSON", Details: "unexpected data after the JSON object"}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Message: "Malformed JSON", Details: "unexpected data after the JSON object"}
	}
	return nil
}

// jsonError explains a decoding failure in terms of the request's fields.
func jsonError(err error) *Error {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntaxErr):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Message: "Malformed JSON", Details: fmt.Sprintf("%s (at byte %d)", syntaxErr.Error(), syntaxErr.Offset)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Message: "Malformed JSON", Details: "the JSON ends too early"}
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return &Error{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Message: "Malformed JSON", Details: fmt.Sprintf("expected a JSON object, got %s", typeErr.Value)}
		}
		return Validation(fmt.Sprintf("%s: expected %s, got %s", field, jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value))
	}
	// encoding/json reports unknown fields only as text.
	const unknownPrefix = "json: unknown field "
	if msg := err.Error(); len(msg) > len(unknownPrefix) && msg[:len(unknownPrefix)] == unknownPrefix {
		return Validation("unknown field " + msg[len(unknownPrefix):])
	}
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Message: "Malformed JSON", Details: err.Error()}
}

func jsonTypeName(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	}
	return kind
}
