// Command flagd is a flagd-compatible feature-flag daemon for cutover's
// tests, built on the upstream evaluation engine github.com/open-feature/
// flagd/core (the JSON-logic evaluator with flagd's fractional, sem_ver,
// starts_with/ends_with operators, the flag store and the file sync).
//
// Why not upstream's own command: the module github.com/open-feature/flagd/
// flagd is not served by the Go module proxy this machine reaches (403 for the
// version list and for every release tried, v0.11.0 ... v0.16.1), while
// flagd/core v0.16.1 and the generated flagd protocol modules are. This
// program is the wiring upstream's flagd/ module adds around core, reduced to
// what the tests use:
//
//	flagd start --uri file:flags.json [--uri ...] [--port 8013]
//	            [--ofrep-port 8016] [--management-port 8014]
//	flagd start --uri core.openfeature.dev/NAMESPACE/NAME   (a FeatureFlag)
//	flagd version
//
// Port 8013 serves gRPC flagd.evaluation.v1.Service (ResolveBoolean, ...,
// ResolveAll, EventStream) and flagd.evaluation.v2.Service (the same without
// ResolveAll, values optional), what OpenFeature flagd providers in RPC mode
// use (openfeature-provider-flagd 0.6 speaks v2);
// 8016 serves OFREP (POST /ofrep/v1/evaluate/flags[/{key}]); 8014 serves
// /healthz and /readyz (ready once every source has synced).
//
// Sources are upstream's sync providers from flagd/core: flag files are
// watched and reloaded (file sync), and a FeatureFlag object is watched in
// the API server (flagd/core's Kubernetes sync, what the OpenFeature
// Operator's flagd sidecar runs; credentials from $KUBECONFIG, else the
// pod's service account). On every change EventStream sends
// configuration_change naming the flags of that source (clients drop them
// from their caches), as flagd does. Not implemented: the connect/gRPC-web protocols on
// 8013, the sync service (8015), HTTP/gRPC/blob sources, TLS, metrics.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	gosync "sync"
	"syscall"
	"time"

	evalgrpc "buf.build/gen/go/open-feature/flagd/grpc/go/flagd/evaluation/v1/evaluationv1grpc"
	evalgrpc2 "buf.build/gen/go/open-feature/flagd/grpc/go/flagd/evaluation/v2/evaluationv2grpc"
	evalv1 "buf.build/gen/go/open-feature/flagd/protocolbuffers/go/flagd/evaluation/v1"
	evalv2 "buf.build/gen/go/open-feature/flagd/protocolbuffers/go/flagd/evaluation/v2"
	"github.com/open-feature/flagd/core/pkg/evaluator"
	"github.com/open-feature/flagd/core/pkg/logger"
	"github.com/open-feature/flagd/core/pkg/model"
	"github.com/open-feature/flagd/core/pkg/service/ofrep"
	"github.com/open-feature/flagd/core/pkg/store"
	isync "github.com/open-feature/flagd/core/pkg/sync"
	"github.com/open-feature/flagd/core/pkg/sync/file"
	"github.com/open-feature/flagd/core/pkg/sync/kubernetes"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// crdPrefix marks a FeatureFlag source, as in upstream flagd's --uri.
const crdPrefix = "core.openfeature.dev/"

// version is stamped by engines.sh (-X main.version=...): the flagd/core release.
var version = "dev"

type uris []string

func (u *uris) String() string     { return strings.Join(*u, ",") }
func (u *uris) Set(v string) error { *u = append(*u, v); return nil }

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "version", "--version", "-v":
		fmt.Printf("flagd version %s (cutover build on github.com/open-feature/flagd/core v%s; sync: file, kubernetes)\n", version, version)
	case "start":
		if err := start(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "flagd: %v\n", err)
			os.Exit(1)
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: flagd start --uri file:PATH|core.openfeature.dev/NAMESPACE/NAME [--uri ...] [--port 8013] [--ofrep-port 8016] [--management-port 8014]\n       flagd version")
	os.Exit(2)
}

type server struct {
	evalgrpc.UnimplementedServiceServer
	log   *logger.Logger
	eval  *evaluator.JSON
	mu    gosync.Mutex
	subs  map[chan event]struct{}
	ready chan struct{}
}

func start(args []string) error {
	fs := flag.NewFlagSet("flagd start", flag.ExitOnError)
	var sources uris
	fs.Var(&sources, "uri", "flag source: file:PATH, PATH or core.openfeature.dev/NAMESPACE/NAME (repeatable)")
	fs.Var(&sources, "f", "shorthand for --uri")
	port := fs.Int("port", 8013, "gRPC evaluation port")
	fs.IntVar(port, "p", 8013, "shorthand for --port")
	ofrepPort := fs.Int("ofrep-port", 8016, "OFREP port (0: off)")
	fs.IntVar(ofrepPort, "r", 8016, "shorthand for --ofrep-port")
	mgmtPort := fs.Int("management-port", 8014, "health port (0: off)")
	fs.IntVar(mgmtPort, "m", 8014, "shorthand for --management-port")
	debug := fs.Bool("debug", false, "debug logging")
	fs.BoolVar(debug, "d", false, "shorthand for --debug")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(sources) == 0 {
		return errors.New("no flag source: give --uri file:PATH")
	}
	level := zapcore.InfoLevel
	if *debug {
		level = zapcore.DebugLevel
	}
	zl, err := logger.NewZapLogger(level, "console")
	if err != nil {
		return err
	}
	log := logger.NewLogger(zl, false)

	// one sync provider a source, named as flagd/core's syncs name their data (the store's source key)
	syncs := make([]isync.ISync, len(sources))
	names := make([]string, len(sources))
	var dyn dynamic.Interface
	for i, s := range sources {
		switch {
		case strings.HasPrefix(s, crdPrefix):
			if dyn == nil {
				if dyn, err = kubeClient(); err != nil {
					return fmt.Errorf("source %q: %w", s, err)
				}
			}
			names[i] = strings.TrimPrefix(s, crdPrefix)
			syncs[i] = kubernetes.NewK8sSync(log.WithFields(zap.String("component", "sync"), zap.String("sync", "kubernetes")), names[i], dyn)
		case strings.HasPrefix(s, "file:") || !strings.Contains(s, "://"):
			names[i] = strings.TrimPrefix(s, "file:")
			syncs[i] = file.NewFileSync(names[i], file.FSNOTIFY, log.WithFields(zap.String("component", "sync"), zap.String("sync", "file")))
		default:
			return fmt.Errorf("source %q: this build reads file:PATH and core.openfeature.dev/NAMESPACE/NAME sources", s)
		}
	}
	st, err := store.NewStore(log, names)
	if err != nil {
		return fmt.Errorf("creating flag store: %w", err)
	}
	srv := &server{log: log, eval: evaluator.NewJSON(log, st), subs: map[chan event]struct{}{}, ready: make(chan struct{})}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	data := make(chan isync.DataSync, 8)
	for i, s := range syncs {
		if err := s.Init(ctx); err != nil {
			return fmt.Errorf("source %s: %w", sources[i], err)
		}
		name := sources[i]
		go func() {
			for ctx.Err() == nil { // a sync that stops (the API server unreachable at start) is started again
				if err := s.Sync(ctx, data); err != nil && ctx.Err() == nil {
					log.Error(fmt.Sprintf("sync of %s stopped: %v; retrying in 2 s", name, err))
				}
				select {
				case <-ctx.Done():
				case <-time.After(2 * time.Second):
				}
			}
		}()
	}
	go srv.apply(ctx, data, len(syncs))

	gs := grpc.NewServer()
	evalgrpc.RegisterServiceServer(gs, srv)
	evalgrpc2.RegisterServiceServer(gs, &serverV2{s: srv})
	lis, err := net.Listen("tcp", fmt.Sprintf(":%d", *port))
	if err != nil {
		return err
	}
	go func() { _ = gs.Serve(lis) }()
	log.Info(fmt.Sprintf("flag evaluation (gRPC) listening on %s", lis.Addr()))

	var https []*http.Server
	if *ofrepPort != 0 {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /ofrep/v1/evaluate/flags/{key}", srv.ofrepOne)
		mux.HandleFunc("POST /ofrep/v1/evaluate/flags", srv.ofrepAll)
		https = append(https, &http.Server{Addr: fmt.Sprintf(":%d", *ofrepPort), Handler: mux})
	}
	if *mgmtPort != 0 {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			select {
			case <-srv.ready:
				w.WriteHeader(http.StatusOK)
			default:
				w.WriteHeader(http.StatusPreconditionFailed)
			}
		})
		https = append(https, &http.Server{Addr: fmt.Sprintf(":%d", *mgmtPort), Handler: mux})
	}
	errc := make(chan error, len(https))
	for _, h := range https {
		h := h
		ln, err := net.Listen("tcp", h.Addr)
		if err != nil {
			return err
		}
		log.Info(fmt.Sprintf("http listening on %s", ln.Addr()))
		go func() { errc <- h.Serve(ln) }()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	for _, h := range https {
		_ = h.Shutdown(sctx)
	}
	gs.GracefulStop()
	return nil
}

// kubeClient is a dynamic client from $KUBECONFIG (or ~/.kube/config), else the in-cluster
// service account, as upstream flagd's Kubernetes sync builder does.
func kubeClient() (dynamic.Interface, error) {
	var cfg *rest.Config
	var err error
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" && os.Getenv("KUBECONFIG") == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes credentials: %w", err)
	}
	return dynamic.NewForConfig(cfg)
}

// event is one message of EventStream: its type and, for configuration_change,
// the keys of the flags that changed (clients drop those from their caches).
type event struct {
	Type  string
	Flags []string
}

// apply feeds synced flag data to the evaluator and tells EventStream clients,
// naming every flag the source held before or holds now, as flagd does.
func (s *server) apply(ctx context.Context, data <-chan isync.DataSync, sources int) {
	seen := map[string]bool{}
	keys := map[string]map[string]bool{} // source -> its flag keys
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-data:
			if err := s.eval.SetState(d); err != nil {
				s.log.Error(fmt.Sprintf("invalid flag data from %s: %v", d.Source, err))
				continue
			}
			s.log.Info(fmt.Sprintf("flags loaded from %s", d.Source))
			if !seen[d.Source] {
				seen[d.Source] = true
				if len(seen) == sources {
					close(s.ready)
				}
			}
			var doc struct {
				Flags map[string]json.RawMessage `json:"flags"`
			}
			_ = json.Unmarshal([]byte(d.FlagData), &doc)
			changed := keys[d.Source]
			keys[d.Source] = map[string]bool{}
			for k := range doc.Flags {
				keys[d.Source][k] = true
			}
			all := map[string]bool{}
			for k := range changed {
				all[k] = true
			}
			for k := range keys[d.Source] {
				all[k] = true
			}
			names := make([]string, 0, len(all))
			for k := range all {
				names = append(names, k)
			}
			s.broadcast(event{Type: "configuration_change", Flags: names})
		}
	}
}

func (s *server) broadcast(ev event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.subs {
		select {
		case c <- ev:
		default:
		}
	}
}

// eventData is the data of a configuration_change message: {"flags": {key: {}}}.
func eventData(ev event) *structpb.Struct {
	if ev.Type != "configuration_change" {
		return nil
	}
	flags := map[string]any{}
	for _, k := range ev.Flags {
		flags[k] = map[string]any{}
	}
	data, err := structpb.NewStruct(map[string]any{"flags": flags})
	if err != nil {
		return nil
	}
	return data
}

func ctxMap(c *structpb.Struct) map[string]any {
	if c == nil {
		return map[string]any{}
	}
	return c.AsMap()
}

func metaStruct(m model.Metadata) *structpb.Struct {
	if len(m) == 0 {
		return nil
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil
	}
	return s
}

// rpcError maps flagd error codes to gRPC status codes as flagd does.
func rpcError(key string, err error) error {
	switch err.Error() {
	case model.FlagNotFoundErrorCode, model.FlagDisabledErrorCode:
		return status.Error(codes.NotFound, err.Error())
	case model.TypeMismatchErrorCode:
		return status.Error(codes.InvalidArgument, err.Error())
	case model.ParseErrorCode:
		return status.Error(codes.DataLoss, err.Error())
	default:
		return status.Error(codes.Unknown, fmt.Sprintf("%s: %v", key, err))
	}
}

func (s *server) ResolveBoolean(ctx context.Context, r *evalv1.ResolveBooleanRequest) (*evalv1.ResolveBooleanResponse, error) {
	v, variant, reason, meta, err := s.eval.ResolveBooleanValue(ctx, "", r.GetFlagKey(), ctxMap(r.GetContext()))
	if err != nil {
		return nil, rpcError(r.GetFlagKey(), err)
	}
	return &evalv1.ResolveBooleanResponse{Value: v, Variant: variant, Reason: reason, Metadata: metaStruct(meta)}, nil
}

func (s *server) ResolveString(ctx context.Context, r *evalv1.ResolveStringRequest) (*evalv1.ResolveStringResponse, error) {
	v, variant, reason, meta, err := s.eval.ResolveStringValue(ctx, "", r.GetFlagKey(), ctxMap(r.GetContext()))
	if err != nil {
		return nil, rpcError(r.GetFlagKey(), err)
	}
	return &evalv1.ResolveStringResponse{Value: v, Variant: variant, Reason: reason, Metadata: metaStruct(meta)}, nil
}

func (s *server) ResolveFloat(ctx context.Context, r *evalv1.ResolveFloatRequest) (*evalv1.ResolveFloatResponse, error) {
	v, variant, reason, meta, err := s.eval.ResolveFloatValue(ctx, "", r.GetFlagKey(), ctxMap(r.GetContext()))
	if err != nil {
		return nil, rpcError(r.GetFlagKey(), err)
	}
	return &evalv1.ResolveFloatResponse{Value: v, Variant: variant, Reason: reason, Metadata: metaStruct(meta)}, nil
}

func (s *server) ResolveInt(ctx context.Context, r *evalv1.ResolveIntRequest) (*evalv1.ResolveIntResponse, error) {
	v, variant, reason, meta, err := s.eval.ResolveIntValue(ctx, "", r.GetFlagKey(), ctxMap(r.GetContext()))
	if err != nil {
		return nil, rpcError(r.GetFlagKey(), err)
	}
	return &evalv1.ResolveIntResponse{Value: v, Variant: variant, Reason: reason, Metadata: metaStruct(meta)}, nil
}

func (s *server) ResolveObject(ctx context.Context, r *evalv1.ResolveObjectRequest) (*evalv1.ResolveObjectResponse, error) {
	v, variant, reason, meta, err := s.eval.ResolveObjectValue(ctx, "", r.GetFlagKey(), ctxMap(r.GetContext()))
	if err != nil {
		return nil, rpcError(r.GetFlagKey(), err)
	}
	val, err := structpb.NewStruct(v)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &evalv1.ResolveObjectResponse{Value: val, Variant: variant, Reason: reason, Metadata: metaStruct(meta)}, nil
}

func (s *server) ResolveAll(ctx context.Context, r *evalv1.ResolveAllRequest) (*evalv1.ResolveAllResponse, error) {
	values, meta, err := s.eval.ResolveAllValues(ctx, "", ctxMap(r.GetContext()))
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	out := &evalv1.ResolveAllResponse{Flags: map[string]*evalv1.AnyFlag{}, Metadata: metaStruct(meta)}
	for _, v := range values {
		if v.Error != nil {
			continue
		}
		f := &evalv1.AnyFlag{Reason: v.Reason, Variant: v.Variant, Metadata: metaStruct(v.Metadata)}
		switch x := v.Value.(type) {
		case bool:
			f.Value = &evalv1.AnyFlag_BoolValue{BoolValue: x}
		case string:
			f.Value = &evalv1.AnyFlag_StringValue{StringValue: x}
		case float64:
			f.Value = &evalv1.AnyFlag_DoubleValue{DoubleValue: x}
		case map[string]any:
			st, err := structpb.NewStruct(x)
			if err != nil {
				continue
			}
			f.Value = &evalv1.AnyFlag_ObjectValue{ObjectValue: st}
		default:
			continue
		}
		out.Flags[v.FlagKey] = f
	}
	return out, nil
}

// events sends provider_ready once the flags are loaded, then
// configuration_change on every reload, and keep_alive every 30 s.
func (s *server) events(ctx context.Context, send func(event) error) error {
	c := make(chan event, 4)
	s.mu.Lock()
	s.subs[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, c)
		s.mu.Unlock()
	}()
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil
	}
	if err := send(event{Type: "provider_ready"}); err != nil {
		return err
	}
	keepalive := time.NewTicker(30 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-c:
			if err := send(ev); err != nil {
				return err
			}
		case <-keepalive.C:
			if err := send(event{Type: "keep_alive"}); err != nil {
				return err
			}
		}
	}
}

func (s *server) EventStream(_ *evalv1.EventStreamRequest, stream grpc.ServerStreamingServer[evalv1.EventStreamResponse]) error {
	return s.events(stream.Context(), func(ev event) error {
		return stream.Send(&evalv1.EventStreamResponse{Type: ev.Type, Data: eventData(ev)})
	})
}

// serverV2 is flagd.evaluation.v2.Service: like v1, but value and variant
// are left out when the flag gives none (reason DISABLED, or no default
// variant), so that the client falls back to its own default.
type serverV2 struct {
	evalgrpc2.UnimplementedServiceServer
	s *server
}

func omit(reason string) bool {
	return reason == model.DisabledReason || reason == model.FallbackReason
}

func opt[T any](v T, reason string) *T {
	if omit(reason) {
		return nil
	}
	return &v
}

func optVariant(variant, reason string) *string {
	if omit(reason) || variant == "" {
		return nil
	}
	return &variant
}

func (v *serverV2) ResolveBoolean(ctx context.Context, r *evalv2.ResolveBooleanRequest) (*evalv2.ResolveBooleanResponse, error) {
	val, variant, reason, meta, err := v.s.eval.ResolveBooleanValue(ctx, "", r.GetFlagKey(), ctxMap(r.GetContext()))
	if err != nil {
		return nil, rpcError(r.GetFlagKey(), err)
	}
	return &evalv2.ResolveBooleanResponse{Value: opt(val, reason), Variant: optVariant(variant, reason), Reason: reason, Metadata: metaStruct(meta)}, nil
}

func (v *serverV2) ResolveString(ctx context.Context, r *evalv2.ResolveStringRequest) (*evalv2.ResolveStringResponse, error) {
	val, variant, reason, meta, err := v.s.eval.ResolveStringValue(ctx, "", r.GetFlagKey(), ctxMap(r.GetContext()))
	if err != nil {
		return nil, rpcError(r.GetFlagKey(), err)
	}
	return &evalv2.ResolveStringResponse{Value: opt(val, reason), Variant: optVariant(variant, reason), Reason: reason, Metadata: metaStruct(meta)}, nil
}

func (v *serverV2) ResolveFloat(ctx context.Context, r *evalv2.ResolveFloatRequest) (*evalv2.ResolveFloatResponse, error) {
	val, variant, reason, meta, err := v.s.eval.ResolveFloatValue(ctx, "", r.GetFlagKey(), ctxMap(r.GetContext()))
	if err != nil {
		return nil, rpcError(r.GetFlagKey(), err)
	}
	return &evalv2.ResolveFloatResponse{Value: opt(val, reason), Variant: optVariant(variant, reason), Reason: reason, Metadata: metaStruct(meta)}, nil
}

func (v *serverV2) ResolveInt(ctx context.Context, r *evalv2.ResolveIntRequest) (*evalv2.ResolveIntResponse, error) {
	val, variant, reason, meta, err := v.s.eval.ResolveIntValue(ctx, "", r.GetFlagKey(), ctxMap(r.GetContext()))
	if err != nil {
		return nil, rpcError(r.GetFlagKey(), err)
	}
	return &evalv2.ResolveIntResponse{Value: opt(val, reason), Variant: optVariant(variant, reason), Reason: reason, Metadata: metaStruct(meta)}, nil
}

func (v *serverV2) ResolveObject(ctx context.Context, r *evalv2.ResolveObjectRequest) (*evalv2.ResolveObjectResponse, error) {
	val, variant, reason, meta, err := v.s.eval.ResolveObjectValue(ctx, "", r.GetFlagKey(), ctxMap(r.GetContext()))
	if err != nil {
		return nil, rpcError(r.GetFlagKey(), err)
	}
	out := &evalv2.ResolveObjectResponse{Variant: optVariant(variant, reason), Reason: reason, Metadata: metaStruct(meta)}
	if !omit(reason) {
		st, err := structpb.NewStruct(val)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		out.Value = st
	}
	return out, nil
}

func (v *serverV2) EventStream(_ *evalv2.EventStreamRequest, stream grpc.ServerStreamingServer[evalv2.EventStreamResponse]) error {
	return v.s.events(stream.Context(), func(ev event) error {
		return stream.Send(&evalv2.EventStreamResponse{Type: ev.Type, Data: eventData(ev)})
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func ofrepContext(r *http.Request) (map[string]any, bool) {
	var req ofrep.Request
	if r.ContentLength == 0 {
		return map[string]any{}, true
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return nil, false
	}
	m, ok := req.Context.(map[string]any)
	if req.Context != nil && !ok {
		return nil, false
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, true
}

func (s *server) ofrepOne(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	evalCtx, ok := ofrepContext(r)
	if !ok {
		writeJSON(w, http.StatusBadRequest, ofrep.ContextErrorResponseFrom(key))
		return
	}
	res := s.eval.ResolveAsAnyValue(r.Context(), "", key, evalCtx)
	if res.Error != nil {
		code, body := ofrep.EvaluationErrorResponseFrom(res)
		writeJSON(w, code, body)
		return
	}
	writeJSON(w, http.StatusOK, ofrep.SuccessResponseFrom(res))
}

func (s *server) ofrepAll(w http.ResponseWriter, r *http.Request) {
	evalCtx, ok := ofrepContext(r)
	if !ok {
		writeJSON(w, http.StatusBadRequest, ofrep.BulkEvaluationContextError())
		return
	}
	values, meta, err := s.eval.ResolveAllValues(r.Context(), "", evalCtx)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, ofrep.InternalError{ErrorDetails: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, ofrep.BulkEvaluationResponseFrom(values, meta))
}
