// Package helperswire answers as github.com/docker/go-plugins-helpers'
// sdk package does, so that pluginsdk/network and pluginsdk/ipam are the
// same on the wire as the go-plugins-helpers packages whose API they
// copy, and a plugin moved from one to the other changes nothing for
// its clients:
//
//   - every answer, /Plugin.Activate's too, is of Content-Type
//     application/vnd.docker.plugins.v1.1+json (not pluginsdk's v1.2);
//   - the manifest is {"Implements": ["<Interface>"]} and a newline;
//   - a JSON answer is encoded by json.Encoder, so ends with a newline;
//     an error is status 500 with {"Err":"<message>"}; a method that
//     returns only an error answers {};
//   - a request body that does not decode is answered by http.Error:
//     400, text/plain, the decoder's message, which names a request type
//     by go-plugins-helpers' package ("network.JoinRequest", not
//     "api.JoinRequest");
//   - the HTTP method is not checked.
//
// One difference is deliberate: a request body is read up to
// pluginsdk.MaxRequestSize (a larger one is a 400), where go-plugins-helpers
// reads any size.
package helperswire

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/netkit/libnetwork/pluginsdk"
)

// ContentType is the Content-Type of go-plugins-helpers' answers.
const ContentType = "application/vnd.docker.plugins.v1.1+json"

// NewHandler returns a pluginsdk.Handler whose /Plugin.Activate answers
// that the plugin implements iface, in go-plugins-helpers' bytes.
func NewHandler(iface string) *pluginsdk.Handler {
	return pluginsdk.NewManifestHandler(ContentType, []byte(`{"Implements": ["`+iface+`"]}`+"\n"))
}

// errorResponse is the body of a failed call.
type errorResponse struct {
	Err string
}

// Query returns the handler of a method without a request: fn's answer,
// or its error.
func Query[Res any](fn func() (Res, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		res, err := fn()
		if err != nil {
			Fail(w, err.Error())
			return
		}
		answer(w, http.StatusOK, res)
	}
}

// Call returns the handler of a method with a request and an answer. pkg
// is the name of the go-plugins-helpers package of the protocol
// ("network", "ipam").
func Call[Req, Res any](pkg string, fn func(*Req) (Res, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := new(Req)
		if !decode(w, r, pkg, req) {
			return
		}
		res, err := fn(req)
		if err != nil {
			Fail(w, err.Error())
			return
		}
		answer(w, http.StatusOK, res)
	}
}

// Do returns the handler of a method with a request and only an error:
// {} on success. pkg is as for Call.
func Do[Req any](pkg string, fn func(*Req) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := new(Req)
		if !decode(w, r, pkg, req) {
			return
		}
		if err := fn(req); err != nil {
			Fail(w, err.Error())
			return
		}
		answer(w, http.StatusOK, struct{}{})
	}
}

// Fail answers 500 with {"Err": msg}.
func Fail(w http.ResponseWriter, msg string) {
	answer(w, http.StatusInternalServerError, errorResponse{Err: msg})
}

// decode decodes the body into req. On failure it answers 400 with the
// decoder's message as text and returns false.
func decode(w http.ResponseWriter, r *http.Request, pkg string, req any) bool {
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, pluginsdk.MaxRequestSize)).Decode(req)
	if err != nil {
		http.Error(w, decodeMessage(err, pkg), http.StatusBadRequest)
		return false
	}
	return true
}

// apiQualifier is the package qualifier of the wire structs in a type's
// name: "api." of "[]*api.IPAMData", not the end of "driverapi.".
var apiQualifier = regexp.MustCompile(`\bapi\.`)

// decodeMessage is err's text as go-plugins-helpers' decoder writes it.
// A type error names the Go type it decoded into ("json: cannot unmarshal
// number into Go struct field CreateNetworkRequest.IPv4Data of type
// api.IPAMData"): the wire structs are package api's here and package
// pkg's there.
func decodeMessage(err error, pkg string) string {
	msg := err.Error()
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Type != nil {
		have := te.Type.String()
		if want := apiQualifier.ReplaceAllLiteralString(have, pkg+"."); want != have {
			msg = strings.Replace(msg, " of type "+have, " of type "+want, 1)
		}
	}
	return msg
}

// answer writes res with json.Encoder, whose newline after the value is
// part of go-plugins-helpers' bytes. The answers of the protocols are
// strings, booleans, numbers and maps of them, which always encode.
func answer(w http.ResponseWriter, status int, res any) {
	w.Header().Set("Content-Type", ContentType)
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	_ = json.NewEncoder(w).Encode(res)
}
