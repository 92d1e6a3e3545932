package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestDomainsAndCertificates(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		other := otherOrg(t, db, "Other")
		_, prod := newProject(t, db, org.ID, "shop")
		web, api := newApp(t, db, prod, "web"), newApp(t, db, prod, "api")
		_, theirEnv := newProject(t, db, other.ID, "them")
		theirs := newApp(t, db, theirEnv, "site")

		d := Domain{OrganizationID: org.ID, AppID: web.ID, Host: "shop.example.com", PathPrefix: "/", Port: 80, HTTPS: true}
		if err := db.CreateDomain(ctx, t0, &d); err != nil || d.ID == "" {
			t.Fatalf("CreateDomain: %v (%+v)", err, d)
		}
		// Same host and path in the same organization: the owner is named.
		dup := Domain{OrganizationID: org.ID, AppID: api.ID, Host: "shop.example.com", PathPrefix: "/", Port: 80}
		var ce *DomainConflictError
		if err := db.CreateDomain(ctx, t0, &dup); !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || ce.OwnerApp != web.ID {
			t.Errorf("duplicate: %v (%+v)", err, ce)
		}
		// Another path of the host is fine within the organization …
		apiPath := Domain{OrganizationID: org.ID, AppID: api.ID, Host: "shop.example.com", PathPrefix: "/api", Port: 80,
			Timeout: 90 * time.Second, MaxBody: 1 << 20, RedirectTo: "https://www.example.com", RedirectCode: 308, RedirectKeepPath: true,
			AuthUser: "alice", AuthHash: "$2a$05$hash", Headers: []Header{{Name: "X-A", Value: `"quoted" \ value`}}, Compress: true}
		if err := db.CreateDomain(ctx, t0, &apiPath); err != nil {
			t.Fatal(err)
		}
		if got, err := db.Domains(ctx, org.ID, api.ID); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], apiPath) {
			t.Errorf("domain with every option read back as %+v, %v; want %+v", got, err, apiPath)
		}
		// … but not for another organization, which does not learn whose it is.
		hijack := Domain{OrganizationID: other.ID, AppID: theirs.ID, Host: "shop.example.com", PathPrefix: "/admin", Port: 80}
		if err := db.CreateDomain(ctx, t0, &hijack); !errors.As(err, &ce) || ce.OwnerApp != "" {
			t.Errorf("another organization's path under our host: %v (%+v)", err, ce)
		}
		// An app of another organization cannot be targeted.
		cross := Domain{OrganizationID: org.ID, AppID: theirs.ID, Host: "x.example.com", PathPrefix: "/", Port: 80}
		if err := db.CreateDomain(ctx, t0, &cross); !errors.Is(err, ErrNotFound) {
			t.Errorf("domain to another organization's app: %v", err)
		}

		list, err := db.Domains(ctx, org.ID, web.ID)
		if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], d) {
			t.Errorf("Domains = %+v, %v; want [%+v]", list, err, d)
		}
		if all, err := db.AllDomains(ctx); err != nil || len(all) != 2 {
			t.Errorf("AllDomains = %+v, %v", all, err)
		}
		if theirList, _ := db.Domains(ctx, other.ID, web.ID); len(theirList) != 0 {
			t.Errorf("another organization lists our domains: %+v", theirList)
		}

		// Certificates: ensured once, saved whole, deleted when unused.
		if err := db.EnsureCertificate(ctx, t0, org.ID, "shop.example.com"); err != nil {
			t.Fatal(err)
		}
		c := Certificate{Host: "shop.example.com", OrganizationID: org.ID, Source: CertACME, CertPEM: "PEM", SealedKey: "sealed",
			Issuer: "Pebble", NotBefore: t0, NotAfter: t0.AddDate(0, 3, 0), NextAttemptAt: t0.AddDate(0, 2, 0)}
		if err := db.SaveCertificate(ctx, t0, c); err != nil {
			t.Fatal(err)
		}
		if err := db.EnsureCertificate(ctx, t0, org.ID, "shop.example.com"); err != nil {
			t.Fatal(err)
		}
		got, err := db.Certificates(ctx, org.ID)
		if err != nil || len(got) != 1 || got[0].CertPEM != "PEM" || !got[0].NotAfter.Equal(c.NotAfter) || got[0].Issuer != "Pebble" {
			t.Fatalf("Certificates = %+v, %v (EnsureCertificate must not reset an issued one)", got, err)
		}
		if err := db.DeleteUnusedCertificates(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.AllCertificates(ctx); len(got) != 1 {
			t.Errorf("certificate of a used host deleted")
		}
		if err := db.DeleteDomain(ctx, other.ID, d.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("another organization deleted our domain: %v", err)
		}
		if err := db.DeleteDomain(ctx, org.ID, d.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteUnusedCertificates(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.AllCertificates(ctx); len(got) != 0 {
			t.Errorf("certificate of a removed domain kept: %+v", got)
		}
		// Deleting the app takes its domains.
		if err := db.DeleteApp(ctx, org.ID, api.ID); err != nil {
			t.Fatal(err)
		}
		if all, _ := db.AllDomains(ctx); len(all) != 0 {
			t.Errorf("domains of a deleted app: %+v", all)
		}

		// Settings used by the router.
		if v, err := db.InitSetting(ctx, "k", "first"); err != nil || v != "first" {
			t.Errorf("InitSetting = %q, %v", v, err)
		}
		if v, _ := db.InitSetting(ctx, "k", "second"); v != "first" {
			t.Errorf("InitSetting overwrote: %q", v)
		}
		if err := db.SetSetting(ctx, "k", "third"); err != nil {
			t.Fatal(err)
		}
		if v, _ := db.Setting(ctx, "k"); v != "third" {
			t.Errorf("SetSetting: %q", v)
		}
		if _, err := db.Setting(ctx, "missing"); !IsNotFound(err) {
			t.Errorf("missing setting: %v", err)
		}
	})
}

func TestUpdateDomain(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		other := otherOrg(t, db, "Other")
		_, prod := newProject(t, db, org.ID, "shop")
		web := newApp(t, db, prod, "web")

		d := Domain{OrganizationID: org.ID, AppID: web.ID, Host: "shop.example.com", PathPrefix: "/api", Port: 80, HTTPS: true,
			AuthUser: "alice", AuthHash: "$2a$05$hash", Headers: []Header{{Name: "X-A", Value: "1"}}}
		if err := db.CreateDomain(ctx, t0, &d); err != nil {
			t.Fatal(err)
		}
		neighbour := Domain{OrganizationID: org.ID, AppID: web.ID, Host: "shop.example.com", PathPrefix: "/", Port: 80}
		if err := db.CreateDomain(ctx, t0, &neighbour); err != nil {
			t.Fatal(err)
		}

		// Every option changes; the host, path, app and creation time do not,
		// whatever the value passed says.
		up := d
		up.AppID, up.Host, up.PathPrefix, up.CreatedAt = "app_elsewhere", "evil.example.com", "/x", t0.Add(time.Hour)
		up.StripPrefix, up.Port, up.HTTPS = true, 0, false
		up.Timeout, up.MaxBody, up.Compress = 0, 0, false
		up.RedirectTo, up.RedirectCode, up.RedirectKeepPath = "https://www.example.com", 302, true
		up.AuthUser, up.AuthHash = "", ""
		up.Headers = []Header{{Name: "X-B", Value: `"quoted"`}, {Name: "X-C", Value: "2"}}
		if err := db.UpdateDomain(ctx, up); err != nil {
			t.Fatal(err)
		}
		want := up
		want.AppID, want.Host, want.PathPrefix, want.CreatedAt = d.AppID, d.Host, d.PathPrefix, d.CreatedAt
		got, err := db.Domains(ctx, org.ID, web.ID)
		if err != nil || len(got) != 2 || !reflect.DeepEqual(got[1], want) {
			t.Fatalf("after update: %+v, %v; want [1] = %+v", got, err, want)
		}
		if !reflect.DeepEqual(got[0], neighbour) {
			t.Errorf("the other route of the host changed: %+v", got[0])
		}

		// And back: a route to the app with every option of one.
		up = want
		up.RedirectTo, up.RedirectCode, up.RedirectKeepPath = "", 0, false
		up.Port, up.HTTPS, up.Timeout, up.MaxBody, up.Compress = 8080, true, 90*time.Second, 1<<20, true
		up.AuthUser, up.AuthHash, up.Headers = "bob", "$2a$05$other", nil
		if err := db.UpdateDomain(ctx, up); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.Domains(ctx, org.ID, web.ID); len(got) != 2 || !reflect.DeepEqual(got[1], up) {
			t.Errorf("after the second update: %+v; want %+v", got, up)
		}

		// Another organization's id, or an unknown one, is not found and
		// changes nothing.
		foreign := up
		foreign.OrganizationID, foreign.Port = other.ID, 1
		if err := db.UpdateDomain(ctx, foreign); !errors.Is(err, ErrNotFound) {
			t.Errorf("update by another organization: %v", err)
		}
		missing := up
		missing.ID = "dom_missing"
		if err := db.UpdateDomain(ctx, missing); !errors.Is(err, ErrNotFound) {
			t.Errorf("update of a missing domain: %v", err)
		}
		if got, _ := db.Domains(ctx, org.ID, web.ID); !reflect.DeepEqual(got[1], up) {
			t.Errorf("a refused update changed the domain: %+v", got[1])
		}
	})
}
