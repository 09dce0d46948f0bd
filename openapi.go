package main

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3.1 description of the HTTP API (openapi.json in the repository root).
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPI is GET /v1/openapi.json: the API description, for client generators and tools.
func (a *App) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, err := w.Write(openAPIDoc)
	return err
}
