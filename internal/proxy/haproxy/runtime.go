package haproxy

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Client speaks HAProxy's Runtime API over the worker's stats socket, which
// the configuration must declare with admin level, for example
//
//	stats socket /run/berth/haproxy.sock mode 600 level admin expose-fd listeners
//
// Each command uses its own connection (non-interactive mode: HAProxy answers
// and closes). The stats socket rather than the master CLI ("@1 …") because it
// needs no process addressing and is the socket the Prometheus/stat tooling
// uses; after a reload the new worker binds the same path, so commands reach
// the current worker.
//
// Runtime changes live only in the running worker's memory: a reload or a
// restart starts from the files on disk again, so whoever renders the
// configuration must write the same state to the map files and the config.
type Client struct {
	Socket string
}

// NewClient returns a client for the stats socket at path.
func NewClient(socket string) *Client { return &Client{Socket: socket} }

// CommandError is HAProxy refusing a command: Reply is its response text
// (e.g. "No such server.", "entry not found.").
type CommandError struct {
	Command string
	Reply   string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("haproxy: %q: %s", e.Command, strings.TrimSpace(e.Reply))
}

// ValidationError is an argument refused before anything was sent to HAProxy.
type ValidationError struct {
	Field string
	Value string
	Allow string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("haproxy: invalid %s %q: allowed %s", e.Field, e.Value, e.Allow)
}

var (
	nameRe    = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
	mapPathRe = regexp.MustCompile(`^(/[A-Za-z0-9_.@+-]+)+$|^#[0-9]+$`)
	// Hostnames and URL paths, and '|' for values made of several fields. No
	// whitespace, control characters, quotes, backslash (the CLI's escape) or
	// ';' (the CLI's command separator).
	mapKeyRe = regexp.MustCompile(`^[A-Za-z0-9._~:/?&=%@!$()*+,|\[\]-]+$`)
)

func checkName(field, v string) error {
	if len(v) > 0 && len(v) <= 128 && nameRe.MatchString(v) {
		return nil
	}
	return &ValidationError{Field: field, Value: v, Allow: "1-128 of [A-Za-z0-9_.:-]"}
}

func checkMapPath(v string) error {
	if len(v) <= 1024 && mapPathRe.MatchString(v) && !strings.Contains(v, "/../") {
		return nil
	}
	return &ValidationError{Field: "map", Value: v, Allow: "an absolute path of [A-Za-z0-9_.@+-/] or #<id>"}
}

func checkMapKey(field, v string) error {
	if len(v) > 0 && len(v) <= 2048 && mapKeyRe.MatchString(v) {
		return nil
	}
	return &ValidationError{Field: field, Value: v, Allow: "1-2048 printable characters without whitespace, quotes, '\\', '#' or ';'"}
}

// do sends one command and returns HAProxy's reply.
func (c *Client) do(ctx context.Context, command string) (string, error) {
	out, err := socketCommand(ctx, c.Socket, command)
	if err != nil {
		return "", fmt.Errorf("haproxy: %q: %w", command, err)
	}
	return out, nil
}

// expectEmpty runs a command whose success reply is empty; anything else is
// HAProxy's error text.
func (c *Client) expectEmpty(ctx context.Context, command string) error {
	out, err := c.do(ctx, command)
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "" {
		return &CommandError{Command: command, Reply: out}
	}
	return nil
}

// expectPrefix runs a command whose success reply starts with one of ok.
func (c *Client) expectPrefix(ctx context.Context, command string, ok ...string) (string, error) {
	out, err := c.do(ctx, command)
	if err != nil {
		return "", err
	}
	for _, p := range ok {
		if strings.HasPrefix(out, p) {
			return out, nil
		}
	}
	return "", &CommandError{Command: command, Reply: out}
}

// AddMapEntry adds key → value to a loaded map (`add map`). HAProxy allows
// duplicate keys; the first one matches, so prefer SetMapEntry for updates.
func (c *Client) AddMapEntry(ctx context.Context, mapPath, key, value string) error {
	if err := errors.Join(checkMapPath(mapPath), checkMapKey("key", key), checkMapKey("value", value)); err != nil {
		return err
	}
	return c.expectEmpty(ctx, "add map "+mapPath+" "+key+" "+value)
}

// SetMapEntry changes the value of an existing key (`set map`); a missing
// key is a *CommandError ("entry not found.").
func (c *Client) SetMapEntry(ctx context.Context, mapPath, key, value string) error {
	if err := errors.Join(checkMapPath(mapPath), checkMapKey("key", key), checkMapKey("value", value)); err != nil {
		return err
	}
	return c.expectEmpty(ctx, "set map "+mapPath+" "+key+" "+value)
}

// DelMapEntry removes every entry for key (`del map`).
func (c *Client) DelMapEntry(ctx context.Context, mapPath, key string) error {
	if err := errors.Join(checkMapPath(mapPath), checkMapKey("key", key)); err != nil {
		return err
	}
	return c.expectEmpty(ctx, "del map "+mapPath+" "+key)
}

// ShowMap returns a map's entries (`show map`). With duplicate keys the first
// one, the one HAProxy matches, wins.
func (c *Client) ShowMap(ctx context.Context, mapPath string) (map[string]string, error) {
	if err := checkMapPath(mapPath); err != nil {
		return nil, err
	}
	cmd := "show map " + mapPath
	out, err := c.do(ctx, cmd)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string)
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue
		}
		// "<entry ptr> <key> <value>"; the pointer is 0x-prefixed.
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 || !strings.HasPrefix(f[0], "0x") {
			return nil, &CommandError{Command: cmd, Reply: out}
		}
		if _, dup := m[f[1]]; !dup {
			m[f[1]] = f[2]
		}
	}
	return m, nil
}

// SetServerWeight sets a server's weight, 0-256 (`set weight`). Weight 0
// takes the server out of load balancing; in-flight requests finish.
func (c *Client) SetServerWeight(ctx context.Context, backend, server string, weight int) error {
	if err := errors.Join(checkName("backend", backend), checkName("server", server)); err != nil {
		return err
	}
	if weight < 0 || weight > 256 {
		return &ValidationError{Field: "weight", Value: strconv.Itoa(weight), Allow: "0-256"}
	}
	return c.expectEmpty(ctx, fmt.Sprintf("set weight %s/%s %d", backend, server, weight))
}

// AdminState is what SetServerState accepts.
type AdminState string

const (
	StateReady AdminState = "ready" // in load balancing
	StateDrain AdminState = "drain" // no new requests; in-flight and persistent ones finish
	StateMaint AdminState = "maint" // out of service
)

// SetServerState sets a server's administrative state (`set server … state`).
func (c *Client) SetServerState(ctx context.Context, backend, server string, state AdminState) error {
	if err := errors.Join(checkName("backend", backend), checkName("server", server)); err != nil {
		return err
	}
	switch state {
	case StateReady, StateDrain, StateMaint:
	default:
		return &ValidationError{Field: "state", Value: string(state), Allow: "ready, drain or maint"}
	}
	return c.expectEmpty(ctx, fmt.Sprintf("set server %s/%s state %s", backend, server, state))
}

func checkAddrPort(addr string, port int) (netip.Addr, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, &ValidationError{Field: "addr", Value: addr, Allow: "an IPv4 or IPv6 address without zone"}
	}
	if port < 1 || port > 65535 {
		return netip.Addr{}, &ValidationError{Field: "port", Value: strconv.Itoa(port), Allow: "1-65535"}
	}
	return ip.Unmap(), nil
}

// SetServerAddr changes a server's address and port (`set server … addr …
// port …`). Existing connections stay on the old address.
func (c *Client) SetServerAddr(ctx context.Context, backend, server, addr string, port int) error {
	if err := errors.Join(checkName("backend", backend), checkName("server", server)); err != nil {
		return err
	}
	ip, err := checkAddrPort(addr, port)
	if err != nil {
		return err
	}
	// Success replies are informational, e.g. "IP changed from '…' to '…',
	// port changed from '…' to '…' by 'stats socket command'", or "no need
	// to change …" when nothing changed.
	_, err = c.expectPrefix(ctx, fmt.Sprintf("set server %s/%s addr %s port %d", backend, server, ip, port),
		"IP changed from", "no need to change", "port changed from")
	return err
}

// ServerOptions are the settings AddServer passes to `add server`. Zero
// values are left to HAProxy's defaults (weight 1, no maxconn).
type ServerOptions struct {
	Weight  int // 1-256
	MaxConn int
}

// AddServer adds a dynamic server to backend (`add server`). Limits on
// HAProxy 2.6: the backend must use a dynamic balance algorithm (roundrobin,
// leastconn, first, random; not static-rr or consistent hashing), settings
// from `default-server` are not inherited, the server starts in maintenance
// (call SetServerState ready), health checks are not enabled here, and the
// server exists only in this worker until the configuration includes it.
func (c *Client) AddServer(ctx context.Context, backend, server, addr string, port int, opts ServerOptions) error {
	if err := errors.Join(checkName("backend", backend), checkName("server", server)); err != nil {
		return err
	}
	ip, err := checkAddrPort(addr, port)
	if err != nil {
		return err
	}
	cmd := fmt.Sprintf("add server %s/%s %s", backend, server, netip.AddrPortFrom(ip, uint16(port)))
	if opts.Weight != 0 {
		if opts.Weight < 1 || opts.Weight > 256 {
			return &ValidationError{Field: "weight", Value: strconv.Itoa(opts.Weight), Allow: "1-256"}
		}
		cmd += " weight " + strconv.Itoa(opts.Weight)
	}
	if opts.MaxConn != 0 {
		if opts.MaxConn < 0 {
			return &ValidationError{Field: "maxconn", Value: strconv.Itoa(opts.MaxConn), Allow: "a positive number"}
		}
		cmd += " maxconn " + strconv.Itoa(opts.MaxConn)
	}
	_, err = c.expectPrefix(ctx, cmd, "New server registered.")
	return err
}

// DelServer removes a dynamic server (`del server`). HAProxy refuses unless
// the server is in maintenance and has no sessions left: use SetServerState
// drain, WaitDrained, then maint first.
func (c *Client) DelServer(ctx context.Context, backend, server string) error {
	if err := errors.Join(checkName("backend", backend), checkName("server", server)); err != nil {
		return err
	}
	_, err := c.expectPrefix(ctx, "del server "+backend+"/"+server, "Server deleted.")
	return err
}

// ServerState is one server of a backend as HAProxy sees it now.
type ServerState struct {
	Name   string
	Addr   netip.Addr // zero when HAProxy has no address (unresolved FQDN)
	Port   int
	Weight int // current user weight
	// Status is the operational status from `show stat`: "UP", "DOWN",
	// "MAINT", "DRAIN", "no check", "UP 1/3" …
	Status string
	// OpState is srv_op_state from `show servers state`:
	// 0 stopped, 1 starting, 2 running, 3 stopping.
	OpState int
	// AdminState is the srv_admin_state bit field (0x01 forced maint,
	// 0x08|0x10 drain, 0x20 maint from resolution …).
	AdminState int
	Sessions   int // scur: current sessions
}

// Maint reports whether any maintenance bit is set.
func (s ServerState) Maint() bool { return s.AdminState&0x67 != 0 }

// Draining reports whether a drain bit is set.
func (s ServerState) Draining() bool { return s.AdminState&0x18 != 0 }

// Servers returns the servers of backend in configuration order, combining
// `show servers state` (address, weight, states) and `show stat` (status,
// current sessions).
func (c *Client) Servers(ctx context.Context, backend string) ([]ServerState, error) {
	if err := checkName("backend", backend); err != nil {
		return nil, err
	}
	cmd := "show servers state " + backend
	out, err := c.do(ctx, cmd)
	if err != nil {
		return nil, err
	}
	servers, err := parseServersState(out)
	if err != nil {
		return nil, &CommandError{Command: cmd, Reply: out}
	}
	stats, err := c.serverStats(ctx, backend)
	if err != nil {
		return nil, err
	}
	for i := range servers {
		if st, ok := stats[servers[i].Name]; ok {
			servers[i].Status = st.status
			servers[i].Sessions = st.scur
		}
	}
	return servers, nil
}

// parseServersState parses `show servers state` (format version 1): a "1"
// line, a "# be_id be_name srv_id srv_name …" header, one line per server.
func parseServersState(out string) ([]ServerState, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != "1" || !strings.HasPrefix(lines[1], "# ") {
		return nil, errors.New("unexpected format")
	}
	col := make(map[string]int)
	for i, h := range strings.Fields(strings.TrimPrefix(lines[1], "# ")) {
		col[h] = i
	}
	for _, need := range []string{"srv_name", "srv_addr", "srv_op_state", "srv_admin_state", "srv_uweight", "srv_port"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("missing column %s", need)
		}
	}
	var servers []ServerState
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < len(col) {
			return nil, errors.New("short line")
		}
		s := ServerState{Name: f[col["srv_name"]]}
		s.Addr, _ = netip.ParseAddr(f[col["srv_addr"]])
		s.Port, _ = strconv.Atoi(f[col["srv_port"]])
		s.Weight, _ = strconv.Atoi(f[col["srv_uweight"]])
		s.OpState, _ = strconv.Atoi(f[col["srv_op_state"]])
		s.AdminState, _ = strconv.Atoi(f[col["srv_admin_state"]])
		servers = append(servers, s)
	}
	return servers, nil
}

type serverStat struct {
	status string
	scur   int
}

// serverStats reads `show stat <backend> 4 -1` (type 4 = servers only), CSV
// with a "# pxname,svname,qcur,qmax,scur,…" header.
func (c *Client) serverStats(ctx context.Context, backend string) (map[string]serverStat, error) {
	cmd := "show stat " + backend + " 4 -1"
	out, err := c.do(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(out, "# ") {
		return nil, &CommandError{Command: cmd, Reply: out}
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, &CommandError{Command: cmd, Reply: out}
	}
	col := make(map[string]int)
	for i, h := range rows[0] {
		col[h] = i
	}
	sv, okSv := col["svname"]
	px, okPx := col["pxname"]
	sc, okSc := col["scur"]
	st, okSt := col["status"]
	if !okSv || !okPx || !okSc || !okSt {
		return nil, &CommandError{Command: cmd, Reply: out}
	}
	stats := make(map[string]serverStat)
	for _, row := range rows[1:] {
		if len(row) <= max(sv, px, sc, st) || row[px] != backend {
			continue
		}
		n, _ := strconv.Atoi(row[sc])
		stats[row[sv]] = serverStat{status: row[st], scur: n}
	}
	return stats, nil
}

// ErrNoSuchServer is returned by WaitDrained when the server is not in the
// backend.
var ErrNoSuchServer = errors.New("haproxy: no such server")

// WaitDrained polls the server's current sessions (scur) every poll until
// they reach 0 or ctx ends. Put the server in drain (or weight 0) first, or
// new requests keep it busy.
func (c *Client) WaitDrained(ctx context.Context, backend, server string, poll time.Duration) error {
	if err := errors.Join(checkName("backend", backend), checkName("server", server)); err != nil {
		return err
	}
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		stats, err := c.serverStats(ctx, backend)
		if err != nil {
			return err
		}
		st, ok := stats[server]
		if !ok {
			return fmt.Errorf("%w: %s/%s", ErrNoSuchServer, backend, server)
		}
		if st.scur == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("haproxy: %s/%s still has %d sessions: %w", backend, server, st.scur, ctx.Err())
		case <-t.C:
		}
	}
}

// ServerStat is one server row of `show stat`.
type ServerStat struct {
	Backend string
	Server  string
	// Sessions is scur: current sessions (requests in flight, for HTTP).
	Sessions int
	// Status is the operational status: "UP", "DOWN", "MAINT (resolution)",
	// "no check", "UP 1/3" …
	Status string
	// Addr is "ip:port", or "" while the server has no address (a
	// server-template slot with no task behind it).
	Addr string
}

// Stats returns every server of every backend in one `show stat -1 4 -1`.
func (c *Client) Stats(ctx context.Context) ([]ServerStat, error) {
	const cmd = "show stat -1 4 -1"
	out, err := c.do(ctx, cmd)
	if err != nil {
		return nil, err
	}
	rows, col, err := parseStatCSV(out, "pxname", "svname", "scur", "status", "addr")
	if err != nil {
		return nil, &CommandError{Command: cmd, Reply: out}
	}
	stats := make([]ServerStat, 0, len(rows))
	for _, row := range rows {
		n, _ := strconv.Atoi(row[col["scur"]])
		stats = append(stats, ServerStat{
			Backend: row[col["pxname"]], Server: row[col["svname"]],
			Sessions: n, Status: row[col["status"]], Addr: row[col["addr"]],
		})
	}
	return stats, nil
}

// parseStatCSV parses `show stat` CSV output ("# pxname,svname,…" header),
// returning the rows that have every needed column and the column indexes.
func parseStatCSV(out string, need ...string) ([][]string, map[string]int, error) {
	if !strings.HasPrefix(out, "# ") {
		return nil, nil, errors.New("no CSV header")
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, nil, errors.New("bad CSV")
	}
	col := make(map[string]int)
	for i, h := range rows[0] {
		col[h] = i
	}
	last := 0
	for _, n := range need {
		i, ok := col[n]
		if !ok {
			return nil, nil, fmt.Errorf("missing column %s", n)
		}
		last = max(last, i)
	}
	var kept [][]string
	for _, row := range rows[1:] {
		if len(row) > last {
			kept = append(kept, row)
		}
	}
	return kept, col, nil
}

// ServersStateFile returns `show servers state` for all backends, verbatim:
// the format the server-state-file directive loads.
func (c *Client) ServersStateFile(ctx context.Context) ([]byte, error) {
	const cmd = "show servers state"
	out, err := c.do(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(out, "1\n# ") {
		return nil, &CommandError{Command: cmd, Reply: out}
	}
	return []byte(out), nil
}

// Certificates. HAProxy 2.6 updates TLS certificates at runtime in
// transactions named by the certificate's file path: a new one is
// NewSSLCert, SetSSLCert, CommitSSLCert, then AddCrtListEntry; an update is
// SetSSLCert and CommitSSLCert; a removal is DelCrtListEntry then DelSSLCert.
// As with maps, the files on disk are not touched: write them too.

// certPathRe is what certificate and crt-list paths may look like.
var certPathRe = regexp.MustCompile(`^(/[A-Za-z0-9_.@+-]+)+$`)

func checkCertPath(field, v string) error {
	if len(v) <= 1024 && certPathRe.MatchString(v) && !strings.Contains(v+"/", "/../") && !strings.Contains(v+"/", "/./") {
		return nil
	}
	return &ValidationError{Field: field, Value: v, Allow: "an absolute path of [A-Za-z0-9_.@+-/]"}
}

// NewSSLCert creates an empty certificate store named file (`new ssl cert`).
func (c *Client) NewSSLCert(ctx context.Context, file string) error {
	if err := checkCertPath("certificate", file); err != nil {
		return err
	}
	_, err := c.expectPrefix(ctx, "new ssl cert "+file, "New empty certificate store")
	return err
}

// SetSSLCert starts (or updates) the transaction that replaces file's
// certificate chain and key with pemData (`set ssl cert <file> <<`). Only
// CERTIFICATE and PRIVATE KEY blocks are accepted; they are re-encoded, so
// nothing but PEM reaches the CLI (an empty line would end the payload).
func (c *Client) SetSSLCert(ctx context.Context, file string, pemData []byte) error {
	if err := checkCertPath("certificate", file); err != nil {
		return err
	}
	payload, err := cleanPEM(pemData)
	if err != nil {
		return err
	}
	cmd := "set ssl cert " + file
	out, err := c.doPayload(ctx, cmd, payload)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(out, "Transaction created") && !strings.HasPrefix(out, "Transaction updated") {
		return &CommandError{Command: cmd, Reply: out}
	}
	return nil
}

// cleanPEM re-encodes the PEM blocks of data, refusing anything else.
func cleanPEM(data []byte) ([]byte, error) {
	notPEM := &ValidationError{Field: "pem", Value: fmt.Sprintf("%d bytes", len(data)), Allow: "only PEM blocks"}
	var out bytes.Buffer
	rest := data
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			break
		}
		var b *pem.Block
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, notPEM
		}
		if b, rest = pem.Decode(rest); b == nil {
			return nil, notPEM
		}
		switch {
		case len(b.Headers) != 0:
			return nil, &ValidationError{Field: "pem", Value: b.Type, Allow: "PEM blocks without headers"}
		case b.Type == "CERTIFICATE", strings.HasSuffix(b.Type, "PRIVATE KEY") && len(b.Type) <= 32:
		default:
			return nil, &ValidationError{Field: "pem", Value: b.Type, Allow: "CERTIFICATE and PRIVATE KEY blocks"}
		}
		if err := pem.Encode(&out, b); err != nil {
			return nil, err
		}
	}
	if out.Len() == 0 {
		return nil, notPEM
	}
	return out.Bytes(), nil
}

// CommitSSLCert applies the pending transaction of file (`commit ssl
// cert`). On failure, HAProxy keeps the transaction: AbortSSLCert it.
func (c *Client) CommitSSLCert(ctx context.Context, file string) error {
	if err := checkCertPath("certificate", file); err != nil {
		return err
	}
	cmd := "commit ssl cert " + file
	out, err := c.do(ctx, cmd)
	if err != nil {
		return err
	}
	if !strings.Contains(out, "\nSuccess!") {
		return &CommandError{Command: cmd, Reply: out}
	}
	return nil
}

// AbortSSLCert drops the pending transaction of file (`abort ssl cert`).
func (c *Client) AbortSSLCert(ctx context.Context, file string) error {
	if err := checkCertPath("certificate", file); err != nil {
		return err
	}
	_, err := c.expectPrefix(ctx, "abort ssl cert "+file, "Transaction aborted")
	return err
}

// AddCrtListEntry adds the committed certificate file to crtList (`add ssl
// crt-list`): every TLS listener using the list serves it for the names it
// covers from now on.
func (c *Client) AddCrtListEntry(ctx context.Context, crtList, file string) error {
	if err := errors.Join(checkCertPath("crt-list", crtList), checkCertPath("certificate", file)); err != nil {
		return err
	}
	cmd := "add ssl crt-list " + crtList + " " + file
	out, err := c.do(ctx, cmd)
	if err != nil {
		return err
	}
	if !strings.Contains(out, "\nSuccess!") {
		return &CommandError{Command: cmd, Reply: out}
	}
	return nil
}

// DelCrtListEntry removes file from crtList (`del ssl crt-list`).
func (c *Client) DelCrtListEntry(ctx context.Context, crtList, file string) error {
	if err := errors.Join(checkCertPath("crt-list", crtList), checkCertPath("certificate", file)); err != nil {
		return err
	}
	cmd := "del ssl crt-list " + crtList + " " + file
	out, err := c.do(ctx, cmd)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(out, "Entry ") || !strings.Contains(out, " deleted in crtlist ") {
		return &CommandError{Command: cmd, Reply: out}
	}
	return nil
}

// DelSSLCert deletes an unused certificate store (`del ssl cert`): remove it
// from every crt-list first.
func (c *Client) DelSSLCert(ctx context.Context, file string) error {
	if err := checkCertPath("certificate", file); err != nil {
		return err
	}
	cmd := "del ssl cert " + file
	out, err := c.do(ctx, cmd)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(out, "Certificate ") || !strings.Contains(out, " deleted!") {
		return &CommandError{Command: cmd, Reply: out}
	}
	return nil
}

// doPayload sends a command with a payload (`<command> <<`, the payload's
// lines, an empty line) on one connection and returns HAProxy's reply. The
// payload must not contain an empty line, which would end it early and turn
// the rest into commands.
func (c *Client) doPayload(ctx context.Context, command string, payload []byte) (string, error) {
	if strings.ContainsAny(command, "\r\n;") || bytes.Contains(payload, []byte("\n\n")) || bytes.ContainsRune(payload, '\r') ||
		len(payload) == 0 || payload[0] == '\n' {
		return "", fmt.Errorf("haproxy: refusing payload command %q: separator or empty line", command)
	}
	msg := command + " <<\n" + strings.TrimSuffix(string(payload), "\n") + "\n\n"
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return "", fmt.Errorf("haproxy: %q: %w", command, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte(msg)); err != nil {
		return "", fmt.Errorf("haproxy: %q: %w", command, err)
	}
	if uc, ok := conn.(*net.UnixConn); ok {
		if err := uc.CloseWrite(); err != nil {
			return "", fmt.Errorf("haproxy: %q: %w", command, err)
		}
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(conn); err != nil {
		return "", fmt.Errorf("haproxy: %q: %w", command, err)
	}
	return buf.String(), nil
}
