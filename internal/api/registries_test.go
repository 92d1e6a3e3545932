package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/api"
)

func TestRegistriesPasswordIsWriteOnly(t *testing.T) {
	a := newAppEnv(t)
	const password, newPassword = "registry-pw-Zq81-never-shown", "registry-pw-Kx42-never-shown"
	a.remember(password, newPassword)
	call := func(want int, method, path string, body any) response {
		t.Helper()
		res := a.expect(want, request{method: method, path: path, body: body, bearer: a.token})
		for _, pw := range []string{password, newPassword} {
			if strings.Contains(string(res.body), pw) {
				t.Errorf("%s %s: the password is in the response: %s", method, path, res.body)
			}
		}
		return res
	}

	var created api.Registry
	call(http.StatusCreated, http.MethodPost, "/api/v1/registries", map[string]string{
		"name": "ghcr", "server": "GHCR.io", "username": "deploy-bot", "password": password,
	}).json(t, &created)
	if created.ID == "" || created.Server != "ghcr.io" || created.Username != "deploy-bot" || !created.HasPassword {
		t.Errorf("created = %+v", created)
	}

	var list api.RegistryList
	call(http.StatusOK, http.MethodGet, "/api/v1/registries", nil).json(t, &list)
	if len(list.Registries) != 1 || list.Registries[0] != created {
		t.Errorf("list = %+v, want [%+v]", list, created)
	}
	// By id or by name.
	for _, key := range []string{created.ID, "ghcr"} {
		var got api.Registry
		call(http.StatusOK, http.MethodGet, "/api/v1/registries/"+key, nil).json(t, &got)
		if got.ID != created.ID {
			t.Errorf("GET %s = %+v", key, got)
		}
	}

	var updated api.Registry
	call(http.StatusOK, http.MethodPatch, "/api/v1/registries/"+created.ID, map[string]string{"password": newPassword, "username": "bot2"}).json(t, &updated)
	if updated.Username != "bot2" || updated.Server != "ghcr.io" || updated.Name != "ghcr" {
		t.Errorf("updated = %+v", updated)
	}
	if updated.UpdatedAt.Before(created.UpdatedAt) {
		t.Errorf("updated_at went back: %v < %v", updated.UpdatedAt, created.UpdatedAt)
	}

	// Invalid input names the field; the password is never echoed.
	for _, c := range []struct {
		body  map[string]string
		field string
	}{
		{map[string]string{"name": "bad", "server": "https://registry.example.com", "username": "u", "password": password}, "server"},
		{map[string]string{"name": "bad", "server": "registry.example.com/team", "username": "u", "password": password}, "server"},
		{map[string]string{"name": "bad", "server": "registry example.com", "username": "u", "password": password}, "server"},
		{map[string]string{"name": "other", "server": "ghcr.io", "username": "u", "password": password}, "server"},
		{map[string]string{"name": "ghcr", "server": "quay.io", "username": "u", "password": password}, "name"},
		{map[string]string{"name": "Bad_Name", "server": "quay.io", "username": "u", "password": password}, "name"},
		{map[string]string{"name": "bad", "server": "quay.io", "username": "", "password": password}, "username"},
		{map[string]string{"name": "bad", "server": "quay.io", "username": "u", "password": ""}, "password"},
	} {
		p := call(http.StatusUnprocessableEntity, http.MethodPost, "/api/v1/registries", c.body).problem(t)
		if len(p.Errors) != 1 || p.Errors[0].Location != "body."+c.field {
			t.Errorf("%v: problem %+v, want one error at body.%s", c.body, p, c.field)
		}
	}
	call(http.StatusUnprocessableEntity, http.MethodPatch, "/api/v1/registries/ghcr", map[string]string{"server": "ftp://x"})
	call(http.StatusUnprocessableEntity, http.MethodPost, "/api/v1/registries", map[string]any{
		"name": "x", "server": "quay.io", "username": "u", "password": password, "organization_id": "org_x",
	})

	call(http.StatusNotFound, http.MethodPost, "/api/v1/registries/nope/test", nil)
	call(http.StatusNotFound, http.MethodGet, "/api/v1/registries/reg_unknown", nil)
	call(http.StatusNoContent, http.MethodDelete, "/api/v1/registries/ghcr", nil)
	call(http.StatusNotFound, http.MethodGet, "/api/v1/registries/"+created.ID, nil)

}
