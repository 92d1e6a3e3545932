package build

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestMask(t *testing.T) {
	pem := "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"
	m := NewMask("hunter2", "", "hunter2-long", pem)
	tests := []struct{ in, want string }{
		{"password=hunter2", "password=****"},
		{"token hunter2-long here", "token **** here"}, // the longer secret whole, not "****-long"
		{"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "****"},   // one line of a multi-line secret
		{"nothing to hide", "nothing to hide"},
	}
	for _, tt := range tests {
		if got := m.Apply(tt.in); got != tt.want {
			t.Errorf("Apply(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
	if got := (Mask{}).Apply("hunter2"); got != "hunter2" {
		t.Errorf("the zero Mask changed %q", got)
	}
}

// classicFailure is what the classic builder (Engine 20.10) sends for a
// failing RUN step, chunked as it arrives.
const classicFailure = `{"stream":"Step 1/3 : FROM berth-fixture/debian:bookworm"}
{"stream":"\n"}
{"stream":" ---\u003e a3761510cb33\n"}
{"stream":"Step 2/3 : RUN echo preparing \u0026\u0026 echo tok=s3cr"}
{"stream":"et \u0026\u0026 exit 3\n"}
{"stream":" ---\u003e Running in 5d0f2b4c1e6a\n"}
{"stream":"preparing\n\u001b[91mtok="}
{"stream":"s3cret\n\u001b[0m"}
{"stream":"Downloading 10%\rDownloading 100%\r\n"}
{"errorDetail":{"code":3,"message":"The command '/bin/sh -c echo preparing \u0026\u0026 echo tok=s3cret \u0026\u0026 exit 3' returned a non-zero code: 3"},"error":"The command '/bin/sh -c echo preparing \u0026\u0026 echo tok=s3cret \u0026\u0026 exit 3' returned a non-zero code: 3"}
`

func TestStreamFailure(t *testing.T) {
	var lines []string
	s := &stream{mask: NewMask("s3cret"), logf: func(l string) { lines = append(lines, l) }}
	err := s.read(strings.NewReader(classicFailure))
	var be *Error
	if !errors.As(err, &be) {
		t.Fatalf("error %v (%T); want *Error", err, err)
	}
	want := []string{
		"Step 1/3 : FROM berth-fixture/debian:bookworm",
		" ---> a3761510cb33",
		"Step 2/3 : RUN echo preparing && echo tok=**** && exit 3",
		" ---> Running in 5d0f2b4c1e6a",
		"preparing",
		"tok=****",
		"Downloading 100%",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("lines:\n%q\nwant:\n%q", lines, want)
	}
	if be.Step != "Step 2/3 : RUN echo preparing && echo tok=**** && exit 3" {
		t.Errorf("step %q", be.Step)
	}
	if !slices.Equal(be.Output, []string{"preparing", "tok=****", "Downloading 100%"}) {
		t.Errorf("step output %q", be.Output)
	}
	if be.MissingBase != "" {
		t.Errorf("a failing RUN reported as a missing base image %q", be.MissingBase)
	}
	msg := be.Error()
	if strings.Contains(msg, "s3cret") {
		t.Errorf("error shows the secret: %s", msg)
	}
	for _, w := range []string{"Step 2/3 : RUN", "returned a non-zero code: 3", "last output of the step:\n  preparing"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
}

func TestStreamMissingBase(t *testing.T) {
	const in = `{"stream":"Step 1/2 : FROM --platform=linux/amd64 berth-fixture/nope:v0"}
{"stream":"\n"}
{"errorDetail":{"message":"pull access denied"},"error":"pull access denied"}
`
	s := &stream{}
	var be *Error
	if err := s.read(strings.NewReader(in)); !errors.As(err, &be) {
		t.Fatalf("error %v; want *Error", err)
	}
	if be.MissingBase != "berth-fixture/nope:v0" {
		t.Errorf("missing base %q", be.MissingBase)
	}
	if !strings.Contains(be.Error(), `base image "berth-fixture/nope:v0" is not on this Docker Engine`) {
		t.Errorf("error %q does not name the missing base image", be)
	}
}

func TestStreamSuccess(t *testing.T) {
	const in = `{"stream":"Step 1/1 : FROM berth-fixture/debian:bookworm\n"}
{"status":"Pulling from berth-fixture/debian","id":"bookworm"}
{"status":"Downloading","progressDetail":{"current":10,"total":100},"progress":"[=>   ]","id":"abc"}
{"aux":{"ID":"sha256:0123"}}
{"stream":"Successfully built 0123\n"}
`
	var lines []string
	s := &stream{logf: func(l string) { lines = append(lines, l) }}
	if err := s.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	if s.imageID != "sha256:0123" {
		t.Errorf("image id %q", s.imageID)
	}
	want := []string{"Step 1/1 : FROM berth-fixture/debian:bookworm", "bookworm: Pulling from berth-fixture/debian", "Successfully built 0123"}
	if !slices.Equal(lines, want) {
		t.Errorf("lines %q; want %q", lines, want)
	}
	if !slices.Equal(s.tail, want) {
		t.Errorf("tail %q; want %q", s.tail, want)
	}
}

func TestStreamBroken(t *testing.T) {
	s := &stream{}
	err := s.read(strings.NewReader(`{"stream":"Step 1/1 : FROM x\n"}` + "\n{\"stream\":"))
	var be *Error
	if err == nil || errors.As(err, &be) {
		t.Fatalf("error %v; want a broken-stream error, not a build failure", err)
	}
}

// traceMessage is the engine's stream message of one BuildKit update.
func traceMessage(t *testing.T, st *controlapi.StatusResponse) string {
	t.Helper()
	data, err := proto.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	aux, _ := json.Marshal(data) // []byte: base64, as the engine sends it
	return `{"id":"moby.buildkit.trace","aux":` + string(aux) + "}\n"
}

func TestStreamBuildKit(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
	build := &controlapi.Vertex{Digest: "sha256:b", Name: "[build 2/3] RUN make TOKEN=s3cret", Started: at(0)}
	other := &controlapi.Vertex{Digest: "sha256:o", Name: "[other 1/1] RUN sleep 9", Started: at(0)}
	in := traceMessage(t, &controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{
		{Digest: "sha256:f", Name: "[build 1/3] FROM docker.io/library/debian:bookworm", Started: at(0), Completed: at(0), Cached: true},
		build, other,
	}}) + traceMessage(t, &controlapi.StatusResponse{Logs: []*controlapi.VertexLog{
		{Vertex: "sha256:b", Stream: 1, Msg: []byte("compiling with s3c")},
		{Vertex: "sha256:o", Stream: 1, Msg: []byte("other stage\n")},
		{Vertex: "sha256:b", Stream: 2, Msg: []byte("ret\nmain.go:3: undefined: foo")},
	}}) + traceMessage(t, &controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{
		{Digest: "sha256:o", Name: other.Name, Started: at(0), Completed: at(time.Second), Error: "context canceled"},
		{Digest: "sha256:b", Name: build.Name, Started: at(0), Completed: at(1500 * time.Millisecond), Error: "executor failed running [/bin/sh -c make]: exit code: 2"},
	}}) + `{"errorDetail":{"message":"executor failed running [/bin/sh -c make]: exit code: 2"},"error":"executor failed running [/bin/sh -c make]: exit code: 2"}` + "\n"
	var lines []string
	s := &stream{mask: NewMask("s3cret"), logf: func(l string) { lines = append(lines, l) }}
	err := s.read(strings.NewReader(in))
	want := []string{
		"#1 [build 1/3] FROM docker.io/library/debian:bookworm",
		"#1 CACHED",
		"#2 [build 2/3] RUN make TOKEN=****",
		"#3 [other 1/1] RUN sleep 9",
		"#3 other stage",
		"#2 compiling with ****",
		"#3 ERROR: context canceled",
		"#2 main.go:3: undefined: foo",
		"#2 ERROR: executor failed running [/bin/sh -c make]: exit code: 2",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	var be *Error
	if !errors.As(err, &be) {
		t.Fatalf("error %v (%T); want *Error", err, err)
	}
	if be.Step != "[build 2/3] RUN make TOKEN=****" || !slices.Equal(be.Output, []string{"compiling with ****", "main.go:3: undefined: foo"}) || be.MissingBase != "" {
		t.Errorf("error %+v; want the failing step (not the cancelled one) and its output", be)
	}
}

func TestStreamBuildKitMissingBase(t *testing.T) {
	const reason = `failed to solve with frontend dockerfile.v0: failed to create LLB definition: pull access denied, repository does not exist`
	in := traceMessage(t, &controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{{
		Digest: "sha256:m", Name: "[internal] load metadata for docker.io/berth-fixture/nope:v0",
		Started: timestamppb.Now(), Completed: timestamppb.Now(), Error: "pull access denied, repository does not exist",
	}}}) + `{"errorDetail":{"message":"` + reason + `"},"error":"` + reason + `"}` + "\n"
	s := &stream{}
	var be *Error
	if err := s.read(strings.NewReader(in)); !errors.As(err, &be) || be.MissingBase != "berth-fixture/nope:v0" {
		t.Fatalf("error %v; want *Error with the missing base berth-fixture/nope:v0", err)
	}
	if !strings.HasPrefix(be.Error(), `base image "berth-fixture/nope:v0" is not on this Docker Engine`) {
		t.Errorf("message %q", be.Error())
	}
}
