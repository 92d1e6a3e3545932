package api_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/api"
)

// Server-set fields (ids, the organization, the owner, timestamps, paths)
// smuggled into any request body are refused with 422 naming the field,
// for every operation of the OpenAPI document that takes a JSON body, and
// nothing changes: the owner's call with the field added fails, the same
// call without it is the fixture's accepted one.
func TestServerSetFieldsAreRefusedInEveryBody(t *testing.T) {
	a := newTeamEnv(t, "")
	f := newMatrixFixture(t, a)
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			RequestBody *struct {
				Content map[string]json.RawMessage `json:"content"`
			} `json:"requestBody"`
		} `json:"paths"`
	}
	a.expect(http.StatusOK, request{method: "GET", path: api.SpecPath}).json(t, &doc)
	smuggled := map[string]any{"organization_id": "org_evil", "id": "x_evil", "owner_id": "usr_evil", "created_at": "2001-01-01T00:00:00Z", "host_path": "/etc"}
	checked := 0
	for path, byMethod := range doc.Paths {
		for method, op := range byMethod {
			if op.RequestBody == nil || op.RequestBody.Content["application/json"] == nil || op.OperationID == "receive-webhook" {
				continue
			}
			o := matrixOp{id: op.OperationID, method: strings.ToUpper(method), path: path}
			body := map[string]any{}
			if b, ok := f.body(o, "owner").(map[string]any); ok {
				maps.Copy(body, b)
			} else if b := f.body(o, "owner"); b != nil {
				raw, _ := json.Marshal(b)
				json.Unmarshal(raw, &body)
			}
			maps.Copy(body, smuggled)
			status, resp := a.probe(o.method, buildPath(path, f.params(o, "owner")), body, a.token)
			checked++
			if status != http.StatusUnprocessableEntity {
				t.Errorf("%s %s with server-set fields: %d %s, want 422", o.method, path, status, resp)
				continue
			}
			if !strings.Contains(string(resp), "organization_id") {
				t.Errorf("%s: the refusal does not name the smuggled field: %s", o.id, resp)
			}
		}
	}
	if checked < 30 {
		t.Errorf("only %d operations with a JSON body were checked", checked)
	}
}
