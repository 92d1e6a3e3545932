package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/store"
)

// domainsView is an app's Domains tab: the list (which refreshes itself
// while a certificate is being requested) and the add form, or the same
// form editing one domain. htmx swaps it as a whole after an add, an edit
// or a removal.
type domainsView struct {
	CSRF        string
	ReadOnly    bool // the role may not add, change or remove domains here
	AppName     string
	AppPort     int // the app's HTTP port; 0 hides the form
	URL         string
	ListURL     string // the list alone, polled while Pending
	SettingsURL string
	Notice      *Notice
	FormError   string
	Rows        []domainRow
	Pending     bool // a certificate is being requested: the list polls
	Host        Field
	PathPrefix  Field
	Port        Field
	StripPrefix Field
	HTTPS       Field
	// Options, folded away unless one is set or wrong.
	OptionsOpen       bool
	Timeout           Field
	MaxBody           Field
	Compress          Field
	RedirectTo        Field
	RedirectCode      Field
	RedirectKeepPath  Field
	BasicAuthUser     Field
	BasicAuthPassword Field
	Headers           Field
	// Editing is the domain the form edits; nil for the add form.
	Editing *domainEdit
	// FormAction is where the form posts: the add or the edit route.
	FormAction string
	// RemoveAuth drops an edited domain's basic auth; shown when it has one.
	RemoveAuth Field
	// Upload is the own-certificate form; nil without HTTPS domains.
	Upload *certUploadView
}

// domainEdit is the domain the form edits. Its host and path prefix name
// the route and are shown, not edited.
type domainEdit struct{ ID, Host, PathPrefix string }

// Label is the domain as people write it.
func (e domainEdit) Label() string { return domainRow{Host: e.Host, PathPrefix: e.PathPrefix}.Label() }

// certUploadView is the form that replaces an HTTPS domain's ACME
// certificate with the user's own.
type certUploadView struct {
	Action            string
	FormError         string
	Domain, Cert, Key Field
}

func newCertUpload(ref deploy.AppRef, ds []deploy.Domain) *certUploadView {
	v := &certUploadView{Action: appURL(ref, "/domains/certificate"),
		Domain: Field{ID: "cert-domain", Name: "domain", Label: "Domain", Type: "select", Required: true},
		Cert: Field{ID: "cert-pem", Name: "cert_pem", Label: "Certificate chain (PEM)", Type: "textarea", Rows: 6, Code: true, Required: true,
			Placeholder: "-----BEGIN CERTIFICATE-----", Hint: "The certificate first, then its intermediates. It must cover the host, be valid now and chain to a trusted root."},
		Key: Field{ID: "cert-key", Name: "key_pem", Label: "Private key (PEM)", Type: "textarea", Rows: 6, Code: true, Required: true,
			Placeholder: "-----BEGIN PRIVATE KEY-----", Hint: "PKCS#8, PKCS#1 or SEC1, unencrypted. Never shown again."},
	}
	for _, d := range ds {
		if d.HTTPS && d.RedirectTo == "" {
			label := domainRow{Host: d.Host, PathPrefix: d.PathPrefix}.Label()
			v.Domain.Options = append(v.Domain.Options, Option{Value: d.ID, Label: label})
		}
	}
	if len(v.Domain.Options) == 0 {
		return nil
	}
	return v
}

// domainTyped is what was typed into the add or edit form, to show it
// again.
type domainTyped struct {
	host, prefix, port, timeout, maxBody, redirectTo, redirectCode, authUser, headers string
	strip, https, compress, keepPath, removeAuth                                      bool
}

// typedOf is a domain as the edit form shows it.
func typedOf(d deploy.Domain) domainTyped {
	f := domainTyped{host: d.Host, prefix: d.PathPrefix, strip: d.StripPrefix, https: d.HTTPS, compress: d.Compress,
		authUser: d.AuthUser, redirectTo: d.RedirectTo, redirectCode: "308", keepPath: true}
	if d.RedirectTo != "" {
		f.redirectCode, f.keepPath = strconv.Itoa(d.RedirectCode), d.RedirectKeepPath
	} else {
		f.port = strconv.Itoa(d.Port)
	}
	if d.Timeout != 0 {
		f.timeout = strconv.Itoa(int(d.Timeout / time.Second))
	}
	if d.MaxBody != 0 {
		f.maxBody = formSize(d.MaxBody)
	}
	var hs []string
	for _, h := range d.Headers {
		hs = append(hs, h.Name+": "+h.Value)
	}
	f.headers = strings.Join(hs, "\n")
	return f
}

// formSize writes a size as the form reads it back (parseMemory): "10m",
// "512k", "1500b".
func formSize(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{40, "t"}, {30, "g"}, {20, "m"}, {10, "k"}} {
		if n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "b"
}

// domainRow is one route to the app.
type domainRow struct {
	ID           string
	Host         string
	PathPrefix   string // "/" for every path
	Stripped     bool
	Link         string // where the domain answers, as a browser would open it
	Port         int
	HTTPS        bool
	Cert         *certView // nil for plain-HTTP domains
	RemoveAction string
	EditURL      string // the tab with this domain in the form
	CSRF         string
	// Redirect is "308 → https://www.example.com/…" for a redirect domain.
	Redirect string
	// Tags name the domain's other options: "gzip", "auth: preview", …
	Tags []string
}

// Label is the domain as people write it: shop.example.com/api.
func (d domainRow) Label() string {
	if d.PathPrefix == "/" {
		return d.Host
	}
	return d.Host + d.PathPrefix
}

// certView is a certificate's state in words, shared by the Domains tab and
// the proxy page.
type certView struct {
	Badge   Badge
	Source  string // "ACME" or "Custom"
	Issued  bool
	Pending bool
	Issuer  string
	Expires time.Time // zero until issued
	Left    string    // "in 89 days", "expired 2 days ago"
	Error   string    // the last failure, in the CA's words
	Retry   string    // when Berth tries again: "in 5 minutes"
}

// ExpiresOn is the expiry as a date.
func (c certView) ExpiresOn() string {
	return c.Expires.UTC().Format("2 Jan 2006")
}

// certState reads a certificate: status is "issued", "pending" or
// "failed"; next (optional) is Berth's next attempt to issue or renew.
func certState(source, status, issuer string, notAfter time.Time, lastErr string, next *time.Time, now time.Time) certView {
	c := certView{Source: strings.ToUpper(source), Issuer: issuer, Error: sentence(lastErr)}
	if source == store.CertCustom {
		c.Source = "Custom"
	}
	if next != nil && !next.IsZero() {
		if next.After(now) {
			c.Retry = relativeTo(*next, now)
		} else {
			c.Retry = "shortly"
		}
	}
	switch status {
	case "issued":
		c.Issued, c.Expires = true, notAfter
		c.Badge = Badge{"Issued", "ok"}
		left := notAfter.Sub(now)
		switch days := int(left / (24 * time.Hour)); {
		case left <= 0:
			c.Badge = Badge{"Expired", "fail"}
			c.Left = "expired " + relativeTo(notAfter, now)
		case days == 0:
			c.Left = "in less than a day"
		case days == 1:
			c.Left = "in 1 day"
		default:
			c.Left = "in " + strconv.Itoa(days) + " days"
		}
		// Renewal starts a month ahead: two weeks left means it keeps failing.
		if left > 0 && left < 14*24*time.Hour {
			c.Badge.Tone = "warn"
		}
	case "failed":
		c.Badge = Badge{"Failed", "fail"}
	default:
		c.Pending = true
		c.Badge = Badge{"Pending", "info"}
	}
	return c
}

func domainCert(s *deploy.CertStatus, now time.Time) *certView {
	if s == nil {
		return nil
	}
	var notAfter time.Time
	if s.NotAfter != nil {
		notAfter = *s.NotAfter
	}
	c := certState(s.Source, s.Status, s.Issuer, notAfter, s.LastError, s.NextAttempt, now)
	return &c
}

// domainLink is where a domain answers: https once its certificate is
// there (Berth redirects to it then), plain http before.
func domainLink(d deploy.Domain) string {
	scheme := "http"
	if d.HTTPS && d.Certificate != nil && d.Certificate.Status == "issued" {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: d.Host, Path: d.PathPrefix}).String()
}

// domainFields are the add form's controls, holding what was typed.
func (v *domainsView) domainFields(f domainTyped) {
	v.Host = Field{ID: "domain-host", Name: "host", Label: "Host", Type: "text", Value: f.host, Required: true, MaxLength: 253,
		Placeholder: "shop.example.com", Code: true, Autocomplete: "off",
		Hint: "A DNS name whose A or AAAA record points at this cluster, not an IP address. *.example.com works when the server has a DNS-01 provider (--acme-dns-provider)."}
	v.PathPrefix = Field{ID: "domain-path", Name: "path_prefix", Label: "Path prefix", Type: "text", Value: f.prefix, MaxLength: 256,
		Placeholder: "/", Code: true, Autocomplete: "off",
		Hint: "Route only this path and below, on whole segments, such as /api. Empty for every path."}
	v.Port = Field{ID: "domain-port", Name: "port", Label: "Container port", Type: "number", Value: f.port, Min: "1", Max: "65535"}
	if v.AppPort > 0 {
		v.Port.Placeholder = strconv.Itoa(v.AppPort)
		v.Port.Hint = "Where requests go in the container. Empty for the app's HTTP port, " + strconv.Itoa(v.AppPort) + "."
	}
	v.StripPrefix = Field{ID: "domain-strip", Name: "strip_prefix", Label: "Strip prefix", Type: "checkbox", Checked: f.strip,
		Hint: "Remove the path prefix before the request reaches the app: /api/users arrives as /users."}
	v.HTTPS = Field{ID: "domain-https", Name: "https", Label: "HTTPS", Type: "checkbox", Checked: f.https,
		Hint: "Request a certificate from the ACME CA and redirect HTTP to HTTPS once it is issued."}
	v.Timeout = Field{ID: "domain-timeout", Name: "timeout", Label: "Timeout (seconds)", Type: "number", Value: f.timeout, Min: "1", Max: "3600",
		Placeholder: "60", Hint: "How long the app may take to answer. Empty for 60 seconds."}
	v.MaxBody = Field{ID: "domain-max-body", Name: "max_body", Label: "Largest request body", Type: "text", Value: f.maxBody, MaxLength: 20,
		Placeholder: "no limit", Code: true, Autocomplete: "off", Hint: "Such as 10m or 512k; larger uploads get 413. Empty for no limit."}
	v.Compress = Field{ID: "domain-compress", Name: "compress", Label: "Compress", Type: "checkbox", Checked: f.compress,
		Hint: "Gzip HTML, CSS, JavaScript, JSON, XML, SVG and text for browsers that accept it."}
	v.RedirectTo = Field{ID: "domain-redirect-to", Name: "redirect_to", Label: "Redirect to", Type: "text", Value: f.redirectTo, MaxLength: 512,
		Placeholder: "https://www.example.com", Code: true, Autocomplete: "off",
		Hint: "Answer with a redirect to this URL instead of routing to the app: for example.com → www.example.com, or an old domain. Port, timeout and compression do not apply."}
	v.RedirectCode = Field{ID: "domain-redirect-code", Name: "redirect_code", Label: "Redirect status", Type: "select", Options: []Option{
		{Value: "308", Label: "308 Permanent"}, {Value: "301", Label: "301 Moved permanently"},
		{Value: "307", Label: "307 Temporary"}, {Value: "302", Label: "302 Found"}}}
	for i := range v.RedirectCode.Options {
		v.RedirectCode.Options[i].Selected = v.RedirectCode.Options[i].Value == f.redirectCode
	}
	v.RedirectKeepPath = Field{ID: "domain-redirect-keep", Name: "redirect_keep_path", Label: "Keep the path", Type: "checkbox", Checked: f.keepPath,
		Hint: "Append the request's path and query: /a?b=1 goes to https://www.example.com/a?b=1."}
	v.BasicAuthUser = Field{ID: "domain-auth-user", Name: "basic_auth_user", Label: "Basic auth user", Type: "text", Value: f.authUser, MaxLength: 64,
		Autocomplete: "off", Hint: "Ask every visitor for this user's password, such as for a preview. Empty for none."}
	v.BasicAuthPassword = Field{ID: "domain-auth-password", Name: "basic_auth_password", Label: "Basic auth password", Type: "password", MaxLength: 72,
		Autocomplete: "new-password", Hint: "8 to 72 characters. Stored as a hash, never shown again."}
	v.Headers = Field{ID: "domain-headers", Name: "headers", Label: "Response headers", Type: "textarea", Value: f.headers, Rows: 3, Code: true,
		Placeholder: "Strict-Transport-Security: max-age=63072000", Hint: "One Name: value per line, at most 10, set on every response."}
	v.OptionsOpen = f.timeout != "" || f.maxBody != "" || f.compress || f.redirectTo != "" || f.authUser != "" || f.headers != ""
}

// edit turns the add form into the form editing d, showing f (d as it is,
// or what was typed into the form) with every option unfolded. The
// password is never shown: left empty, it stays as it is.
func (v *domainsView) edit(d deploy.Domain, f domainTyped) {
	v.domainFields(f)
	v.Editing = &domainEdit{ID: d.ID, Host: d.Host, PathPrefix: d.PathPrefix}
	v.FormAction = v.URL + "/" + url.PathEscape(d.ID) + "/edit"
	v.OptionsOpen = true
	if d.AuthUser != "" {
		v.BasicAuthPassword.Hint = "Leave empty to keep the current password; a new one is 8 to 72 characters, stored as a hash."
		v.RemoveAuth = Field{ID: "domain-auth-remove", Name: "basic_auth_remove", Label: "Remove basic auth", Type: "checkbox", Checked: f.removeAuth,
			Hint: "Let every request through without a password."}
	}
}

// Options lists the option fields in form order, for applying errors.
func (v *domainsView) options() []*Field {
	return []*Field{&v.Timeout, &v.MaxBody, &v.Compress, &v.RedirectTo, &v.RedirectCode, &v.RedirectKeepPath, &v.BasicAuthUser, &v.BasicAuthPassword, &v.Headers}
}

// domainTags sums up a domain's options other than its target.
func domainTags(d deploy.Domain) []string {
	var tags []string
	if d.Timeout != 0 {
		tags = append(tags, "timeout "+strconv.Itoa(int(d.Timeout/time.Second))+"s")
	}
	if d.MaxBody != 0 {
		tags = append(tags, "body ≤ "+humanBytes(d.MaxBody))
	}
	if d.Compress {
		tags = append(tags, "gzip")
	}
	if d.AuthUser != "" {
		tags = append(tags, "auth: "+d.AuthUser)
	}
	for _, h := range d.Headers {
		tags = append(tags, h.Name)
	}
	return tags
}

func humanBytes(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// newDomainsView builds the tab for app a (at ref) from its domains, with
// an empty add form.
func newDomainsView(ref deploy.AppRef, csrf string, a store.App, ds []deploy.Domain, now time.Time) *domainsView {
	v := &domainsView{
		CSRF: csrf, AppName: a.Name, AppPort: a.Spec.Port,
		URL: appURL(ref, "/domains"), ListURL: appURL(ref, "/domains/list"), SettingsURL: appURL(ref, "/settings"),
	}
	v.FormAction = v.URL
	v.domainFields(domainTyped{https: true, keepPath: true, redirectCode: "308"})
	for _, d := range ds {
		row := domainRow{
			ID: d.ID, Host: d.Host, PathPrefix: d.PathPrefix, Stripped: d.StripPrefix, Link: domainLink(d),
			Port: d.Port, HTTPS: d.HTTPS, Cert: domainCert(d.Certificate, now),
			RemoveAction: appURL(ref, "/domains/"+url.PathEscape(d.ID)+"/remove"), CSRF: csrf,
			EditURL: withQuery(appURL(ref, "/domains"), "edit", d.ID),
			Tags:    domainTags(d),
		}
		if d.RedirectTo != "" {
			row.Redirect = strconv.Itoa(d.RedirectCode) + " → " + d.RedirectTo
			if d.RedirectKeepPath {
				row.Redirect += "/…"
			}
		}
		if row.Cert != nil && row.Cert.Pending {
			v.Pending = true
		}
		v.Rows = append(v.Rows, row)
	}
	v.Upload = newCertUpload(ref, ds)
	return v
}

// Count is the list's "2 domains" caption.
func (v domainsView) Count() string {
	if len(v.Rows) == 1 {
		return "1 domain"
	}
	return strconv.Itoa(len(v.Rows)) + " domains"
}

// domainNotices are the messages a redirect back to the tab can ask for.
var domainNotices = map[string]Notice{
	"domain-added":         {Tone: "ok", Title: "Domain added.", Message: "The edge proxy routes it within a few seconds. With HTTPS, Berth requests its certificate now; the list shows when it is issued."},
	"domain-updated":       {Tone: "ok", Title: "Domain saved.", Message: "The edge proxy applies the change within a few seconds."},
	"domain-removed":       {Tone: "ok", Message: "Domain removed. The proxy no longer routes it to this app; a certificate no other domain uses is deleted and not renewed."},
	"domain-missing":       {Tone: "info", Message: "That domain no longer exists. It may have been removed in another tab."},
	"certificate-uploaded": {Tone: "ok", Title: "Certificate saved.", Message: "The edge proxy serves it within a few seconds, without a reload. Berth does not renew it: upload the next one before it expires."},
}

func (u *ui) domainsOf(r *http.Request, p auth.Principal, a store.App) (*domainsView, error) {
	ref := appRefOf(r)
	ds, err := u.d.Apps.Domains(r.Context(), p, ref)
	if err != nil {
		return nil, err
	}
	v := newDomainsView(ref, p.CSRFToken, a, ds, time.Now())
	v.ReadOnly = !p.CanIn(authz.DomainWrite, a.ProjectID, a.EnvironmentID)
	return v, nil
}

// appDomains shows the tab; ?edit=ID puts that domain into the form (htmx
// asks for the tab's section alone).
func (u *ui) appDomains(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, _, ok := u.domainsTab(w, r, p)
	if !ok {
		return
	}
	if n, ok := domainNotices[r.URL.Query().Get("notice")]; ok {
		v.Domains.Notice = &n
	}
	if id := r.URL.Query().Get("edit"); id != "" {
		d, err := u.d.Apps.Domain(r.Context(), p, appRefOf(r), id)
		switch {
		case err == nil:
			v.Domains.edit(d, typedOf(d))
			v.Domains.Port.Autofocus = true
		case errors.Is(err, store.ErrNotFound):
			n := domainNotices["domain-missing"]
			v.Domains.Notice = &n
		default:
			u.failed(w, r, p, "show domain", err)
			return
		}
	}
	v.Title = "Domains · " + v.Head.Name
	u.renderDomains(w, r, http.StatusOK, v)
}

// withQuery adds a query parameter to a URL that may have some already.
func withQuery(target, key, value string) string {
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	return target + sep + key + "=" + url.QueryEscape(value)
}

// appDomainList is the list's refresh while a certificate is pending; the
// fragment it returns stops polling once none is.
func (u *ui) appDomainList(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	if !isHTMX(r) {
		http.Redirect(w, r, appURL(ref, "/domains"), http.StatusSeeOther)
		return
	}
	a, err := u.d.Apps.App(r.Context(), p, ref)
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	v, err := u.domainsOf(r, p, a)
	if err != nil {
		u.failed(w, r, p, "list domains", err)
		return
	}
	u.renderTemplate(w, r, http.StatusOK, "app", "domain-list", v)
}

// parseDomainForm reads the add form. Unreadable numbers, sizes and header
// lines are the form's own errors; everything else the manager judges.
func parseDomainForm(get func(string) string) (deploy.DomainInput, fieldErrors) {
	in := deploy.DomainInput{
		Host:        strings.TrimSpace(get("host")),
		PathPrefix:  strings.TrimSpace(get("path_prefix")),
		StripPrefix: get("strip_prefix") == "on",
		HTTPS:       get("https") == "on",
		Compress:    get("compress") == "on",
	}
	errs := fieldErrors{}
	if raw := strings.TrimSpace(get("port")); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 65535 {
			errs["port"] = "must be a whole number between 1 and 65535, or empty for the app's HTTP port"
		}
		in.Port = n
	}
	if raw := strings.TrimSpace(get("timeout")); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 3600 {
			errs["timeout"] = "must be a whole number of seconds between 1 and 3600, or empty for 60"
		}
		in.Timeout = time.Duration(n) * time.Second
	}
	if raw := strings.TrimSpace(get("max_body")); raw != "" {
		n, err := parseMemory(raw)
		if err != nil {
			errs["max_body"] = err.Error()
		}
		in.MaxBody = n
	}
	if to := strings.TrimSpace(get("redirect_to")); to != "" {
		code, _ := strconv.Atoi(get("redirect_code"))
		in.Redirect = &deploy.RedirectInput{To: to, Code: code, KeepPath: get("redirect_keep_path") == "on"}
	}
	if user := strings.TrimSpace(get("basic_auth_user")); user != "" || get("basic_auth_password") != "" {
		in.BasicAuth = &deploy.BasicAuthInput{User: user, Password: get("basic_auth_password")}
	}
	lines(get("headers"), func(n int, l string) error {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			errs["headers"] = fmt.Sprintf("line %d: write Name: value", n)
			return errors.New("stop")
		}
		in.Headers = append(in.Headers, store.Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
		return nil
	})
	return in, errs
}

// domainFormFields are the form's names of the manager's domain fields.
var domainFormFields = map[string]string{
	"redirect.to": "redirect_to", "redirect.code": "redirect_code",
	"basic_auth.username": "basic_auth_user", "basic_auth.password": "basic_auth_password",
}

// addDomain adds a domain from the add form.
func (u *ui) addDomain(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	in, errs := parseDomainForm(r.PostFormValue)
	var formError string
	if len(errs) == 0 {
		d, err := u.d.Apps.AddDomain(r.Context(), p, ref, in)
		var conflict *deploy.ConflictError
		switch {
		case err == nil:
			u.d.Log.InfoContext(r.Context(), "domain added", "user_id", p.User.ID, "app", ref.String(), "host", d.Host, "path_prefix", d.PathPrefix)
			u.domainAdded(w, r, p, d)
			return
		case errors.As(err, &conflict):
			formError = "Not added: " + conflict.Message + "."
		case !addAppFieldError(errs, renameField(err, domainFormFields)):
			u.failed(w, r, p, "add domain", err)
			return
		}
	}
	v, _, ok := u.domainsTab(w, r, p)
	if !ok {
		return
	}
	dv := v.Domains
	dv.domainFields(typedDomain(r.PostFormValue, in))
	errs.apply(append([]*Field{&dv.Host, &dv.PathPrefix, &dv.Port, &dv.StripPrefix, &dv.HTTPS}, dv.options()...)...)
	for _, f := range dv.options() {
		if f.Error != "" {
			dv.OptionsOpen = true
		}
	}
	dv.FormError = formError
	if len(errs) > 0 {
		dv.FormError = "Not added. " + formErrorSummary(errs)
	}
	v.Domains = dv
	u.renderDomains(w, r, http.StatusUnprocessableEntity, v)
}

// typedDomain is what the domain form held when it was posted, to show it
// again; in is what parseDomainForm made of it.
func typedDomain(get func(string) string, in deploy.DomainInput) domainTyped {
	return domainTyped{host: get("host"), prefix: get("path_prefix"), port: get("port"), strip: in.StripPrefix, https: in.HTTPS,
		timeout: get("timeout"), maxBody: get("max_body"), compress: in.Compress, redirectTo: get("redirect_to"),
		redirectCode: get("redirect_code"), keepPath: get("redirect_keep_path") == "on", authUser: get("basic_auth_user"), headers: get("headers"),
		removeAuth: get("basic_auth_remove") == "on"}
}

// domainsTab is the app page on its Domains tab, the domains listed. When
// that fails it answers the error page and ok is false.
func (u *ui) domainsTab(w http.ResponseWriter, r *http.Request, p auth.Principal) (v appView, st deploy.Status, ok bool) {
	v, st, err := u.appPage(r, p, "domains")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return v, st, false
	}
	if v.Domains, err = u.domainsOf(r, p, st.App); err != nil {
		u.failed(w, r, p, "list domains", err)
		return v, st, false
	}
	return v, st, true
}

// updateDomain saves the edit form: every option of the domain, as the
// form shows them (an empty password keeps the current one). Refused values
// are shown under their fields with nothing saved.
func (u *ui) updateDomain(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	cur, err := u.d.Apps.Domain(r.Context(), p, ref, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		u.domainGone(w, r, p)
		return
	} else if err != nil {
		u.failed(w, r, p, "show domain", err)
		return
	}
	get := r.PostFormValue
	in, errs := parseDomainForm(get)
	in.Host, in.PathPrefix = cur.Host, cur.PathPrefix
	if get("basic_auth_remove") == "on" {
		in.BasicAuth = nil
	}
	var formError string
	if len(errs) == 0 {
		d, err := u.d.Apps.UpdateDomain(r.Context(), p, ref, cur.ID, in)
		var conflict *deploy.ConflictError
		switch {
		case err == nil:
			u.d.Log.InfoContext(r.Context(), "domain updated", "user_id", p.User.ID, "app", ref.String(), "domain_id", d.ID, "host", d.Host, "path_prefix", d.PathPrefix)
			u.domainUpdated(w, r, p, cur, d)
			return
		case errors.Is(err, store.ErrNotFound):
			u.domainGone(w, r, p)
			return
		case errors.As(err, &conflict):
			formError = "Not saved: " + conflict.Message + "."
		case !addAppFieldError(errs, renameField(err, domainFormFields)):
			u.failed(w, r, p, "update domain", err)
			return
		}
	}
	v, _, ok := u.domainsTab(w, r, p)
	if !ok {
		return
	}
	dv := v.Domains
	typed := typedDomain(get, in)
	typed.host, typed.prefix = cur.Host, cur.PathPrefix
	dv.edit(cur, typed)
	errs.apply(append([]*Field{&dv.Port, &dv.StripPrefix, &dv.HTTPS}, dv.options()...)...)
	dv.FormError = formError
	if len(errs) > 0 {
		dv.FormError = "Not saved. " + formErrorSummary(errs)
		// The host and path are not fields of this form: above it, then.
		if msg, ok := errs["host"]; ok {
			dv.FormError = "Not saved: the host " + sentence(msg)
		} else if msg, ok := errs["path_prefix"]; ok {
			dv.FormError = "Not saved: the path prefix " + sentence(msg)
		}
	}
	v.Domains = dv
	u.renderDomains(w, r, http.StatusUnprocessableEntity, v)
}

// domainGone answers a form about a domain removed meanwhile (in another
// tab): the tab as it is now, saying so.
func (u *ui) domainGone(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !isHTMX(r) {
		http.Redirect(w, r, withNotice(appURL(appRefOf(r), "/domains"), "domain-missing")+"#domains", http.StatusSeeOther)
		return
	}
	v, _, ok := u.domainsTab(w, r, p)
	if !ok {
		return
	}
	n := domainNotices["domain-missing"]
	v.Domains.Notice = &n
	u.renderDomains(w, r, http.StatusOK, v)
}

func (u *ui) domainUpdated(w http.ResponseWriter, r *http.Request, p auth.Principal, old, d deploy.Domain) {
	ref := appRefOf(r)
	if !isHTMX(r) {
		http.Redirect(w, r, withNotice(appURL(ref, "/domains"), "domain-updated")+"#domains", http.StatusSeeOther)
		return
	}
	v, _, ok := u.domainsTab(w, r, p)
	if !ok {
		return
	}
	label := domainRow{Host: d.Host, PathPrefix: d.PathPrefix}.Label()
	n := Notice{Tone: "ok", Title: label + " saved.", Message: "The edge proxy applies the change within a few seconds."}
	if d.HTTPS && !old.HTTPS {
		n.Message += " Berth is requesting its certificate; this list updates when it is issued."
	}
	v.Domains.Notice = &n
	u.renderDomains(w, r, http.StatusOK, v)
}

func (u *ui) domainAdded(w http.ResponseWriter, r *http.Request, p auth.Principal, d deploy.Domain) {
	ref := appRefOf(r)
	if !isHTMX(r) {
		http.Redirect(w, r, withNotice(appURL(ref, "/domains"), "domain-added")+"#domains", http.StatusSeeOther)
		return
	}
	v, st, ok := u.domainsTab(w, r, p)
	if !ok {
		return
	}
	label := domainRow{Host: d.Host, PathPrefix: d.PathPrefix}.Label()
	n := Notice{Tone: "ok", Title: label + " now routes to " + st.App.Name + ".", Message: "The edge proxy picks it up within a few seconds."}
	if d.RedirectTo != "" {
		n.Title = label + " now redirects to " + d.RedirectTo + "."
	}
	if d.HTTPS {
		n.Message += " Berth is requesting its certificate; this list updates when it is issued."
	}
	v.Domains.Notice = &n
	u.renderDomains(w, r, http.StatusOK, v)
}

func (u *ui) removeDomain(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	id := r.PathValue("id")
	ds, err := u.d.Apps.Domains(r.Context(), p, ref)
	if err != nil {
		u.failed(w, r, p, "remove domain", err)
		return
	}
	var host string
	for _, d := range ds {
		if d.ID == id {
			host = domainRow{Host: d.Host, PathPrefix: d.PathPrefix}.Label()
		}
	}
	// A domain that is gone (removed in another tab) is no error: the
	// list, as it is now, says so.
	notice := "domain-missing"
	if host != "" {
		err := u.d.Apps.RemoveDomain(r.Context(), p, ref, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			u.failed(w, r, p, "remove domain", err)
			return
		default:
			notice = "domain-removed"
			u.d.Log.InfoContext(r.Context(), "domain removed", "user_id", p.User.ID, "app", ref.String(), "domain_id", id, "host", host)
		}
	}
	if !isHTMX(r) {
		http.Redirect(w, r, withNotice(appURL(ref, "/domains"), notice)+"#domains", http.StatusSeeOther)
		return
	}
	v, st, ok := u.domainsTab(w, r, p)
	if !ok {
		return
	}
	n := domainNotices[notice]
	if notice == "domain-removed" {
		n = Notice{Tone: "ok", Title: host + " removed.", Message: "The edge proxy no longer routes it to " + st.App.Name + ". A certificate no other domain uses is deleted and not renewed."}
	}
	v.Domains.Notice = &n
	u.renderDomains(w, r, http.StatusOK, v)
}

// uploadCertificate replaces an HTTPS domain's certificate with the user's.
func (u *ui) uploadCertificate(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	id, certPEM := r.PostFormValue("domain"), r.PostFormValue("cert_pem")
	d, err := u.d.Apps.UploadCertificate(r.Context(), p, ref, id, certPEM, r.PostFormValue("key_pem"))
	errs := fieldErrors{}
	var conflict *deploy.ConflictError
	var formError string
	switch {
	case err == nil:
		u.d.Log.InfoContext(r.Context(), "certificate uploaded", "user_id", p.User.ID, "app", ref.String(), "host", d.Host)
		http.Redirect(w, r, withNotice(appURL(ref, "/domains"), "certificate-uploaded")+"#domains", http.StatusSeeOther)
		return
	case errors.Is(err, store.ErrNotFound):
		formError = "Not saved: that domain no longer exists."
	case errors.As(err, &conflict):
		formError = "Not saved: " + conflict.Message + "."
	case !addAppFieldError(errs, err):
		u.failed(w, r, p, "upload certificate", err)
		return
	}
	v, _, ok := u.domainsTab(w, r, p)
	if !ok {
		return
	}
	if up := v.Domains.Upload; up != nil {
		for i := range up.Domain.Options {
			up.Domain.Options[i].Selected = up.Domain.Options[i].Value == id
		}
		up.Cert.Value = certPEM
		errs.apply(&up.Cert, &up.Key)
		up.FormError = formError
		if len(errs) > 0 {
			up.FormError = "Not saved. " + formErrorSummary(errs)
		}
	}
	u.render(w, r, http.StatusUnprocessableEntity, "app", v)
}

// renderDomains answers htmx with the tab's section alone and a plain form
// post with the whole app page.
func (u *ui) renderDomains(w http.ResponseWriter, r *http.Request, status int, v appView) {
	if isHTMX(r) {
		u.renderTemplate(w, r, status, "app", "domains", v.Domains)
		return
	}
	u.render(w, r, status, "app", v)
}

// overviewDomains lists an app's domains for its overview; a failure only
// leaves them out.
func (u *ui) overviewDomains(r *http.Request, p auth.Principal, ref deploy.AppRef) []domainRow {
	ds, err := u.d.Apps.Domains(r.Context(), p, ref)
	if err != nil {
		u.d.Log.WarnContext(r.Context(), "web: list domains", "app", ref.String(), "err", err)
		return nil
	}
	rows := make([]domainRow, len(ds))
	for i, d := range ds {
		rows[i] = domainRow{ID: d.ID, Host: d.Host, PathPrefix: d.PathPrefix, Link: domainLink(d), HTTPS: d.HTTPS}
	}
	return rows
}

// headerFieldRe matches the manager's "headers[1].value".
var headerFieldRe = regexp.MustCompile(`^headers\[(\d+)\]\.(name|value)$`)

// renameField gives a manager's field error the form's name for the field;
// a header's error names its line of the textarea.
func renameField(err error, names map[string]string) error {
	var fe *app.FieldError
	if errors.As(err, &fe) {
		if n, ok := names[fe.Field]; ok {
			return &app.FieldError{Field: n, Message: fe.Message}
		}
		if m := headerFieldRe.FindStringSubmatch(fe.Field); m != nil {
			i, _ := strconv.Atoi(m[1])
			return &app.FieldError{Field: "headers", Message: fmt.Sprintf("line %d: %s %s", i+1, m[2], fe.Message)}
		}
	}
	return err
}

// sentence ends s with a full stop unless it already ends a sentence, so a
// message from elsewhere reads well before another sentence.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasSuffix(s, ".") || strings.HasSuffix(s, "!") || strings.HasSuffix(s, "?") {
		return s
	}
	return s + "."
}
