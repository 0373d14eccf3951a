// Package kit is what the go-plugin 1.8 interop hosts (cmd/kvhost18,
// cmd/counterhost18) share: a plugin.Client configured from the environment,
// a runner for ClientConfig.RunnerFunc, the report they print as one JSON line.
//
// Environment (read by the hosts; the plugin inherits it, as go-plugin passes
// the host's environment on):
//
//	GO18_PLUGIN          plugin command (required), run as `sh -c "exec $GO18_PLUGIN"`
//	GO18_AUTOMTLS=1      ClientConfig.AutoMTLS
//	GO18_SOCKET_GROUP    UnixSocketConfig.Group (a name or gid)
//	GO18_SOCKET_TEMPDIR  UnixSocketConfig.TempDir
//	GO18_RUNNER=1        start the plugin through RunnerFunc instead of Cmd: only then
//	                     does go-plugin create a socket directory (inside TempDir) and
//	                     send it as PLUGIN_UNIX_SOCKET_DIR
//	GO18_MULTIPLEX=1     ClientConfig.GRPCBrokerMultiplex
//	GO18_HOST_LOG        file that receives the host's hclog output (JSON, level trace)
//	GO18_SYNC_STDOUT     file that receives the plugin's StreamStdio stdout (SyncStdout)
//	GO18_SYNC_STDERR     file that receives the plugin's StreamStdio stderr (SyncStderr)
//	GO18_START_TIMEOUT   StartTimeout as a Go duration (default 30s)
//	GO18_COOKIE_VALUE    the host's magic cookie value (default hello; the plugins of
//	                     this module always expect hello)
//	GO18_VERSIONS        the host's app protocol versions, comma-separated (default 1)
package kit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
)

// Handshake is the handshake of go-plugin's examples/grpc and examples/bidirectional.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "BASIC_PLUGIN",
	MagicCookieValue: "hello",
}

// GracefulFailMsg is what go-plugin logs (WARN) right before it SIGKILLs a plugin.
const GracefulFailMsg = "plugin failed to exit gracefully"

// LoggerName names the host's logger (its records carry @module "host18...").
const LoggerName = "host18"

// Host is one go-plugin 1.8 Client and what the tests want to know about it.
type Host struct {
	Client *plugin.Client
	Report map[string]interface{}
	// Pending counts calls still in flight; Finish waits for them after Kill().
	Pending sync.WaitGroup

	mu    sync.Mutex
	cmd   *exec.Cmd // the started plugin command (Cmd or the runner's)
	log   *syncBuffer
	files []*os.File // closed by Finish
}

// createFile creates the file the environment variable name names (nil if unset).
func (h *Host) createFile(name string) (*os.File, error) {
	path := os.Getenv(name)
	if path == "" {
		return nil, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	h.files = append(h.files, f)
	return f, nil
}

func writerOrDiscard(f *os.File) io.Writer {
	if f == nil {
		return io.Discard
	}
	return f
}

// NewHost configures a plugin.Client from the environment for plugins.
func NewHost(plugins plugin.PluginSet) (*Host, error) {
	command := os.Getenv("GO18_PLUGIN")
	if command == "" {
		return nil, errors.New("GO18_PLUGIN is not set (the plugin command, run with sh -c)")
	}
	startTimeout := 30 * time.Second
	if s := os.Getenv("GO18_START_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("invalid GO18_START_TIMEOUT %q: %s", s, err)
		}
		startTimeout = d
	}
	h := &Host{Report: map[string]interface{}{}, log: &syncBuffer{}}
	syncStdout, err := h.createFile("GO18_SYNC_STDOUT")
	if err != nil {
		return nil, err
	}
	syncStderr, err := h.createFile("GO18_SYNC_STDERR")
	if err != nil {
		return nil, err
	}
	var output io.Writer = h.log
	logFile, err := h.createFile("GO18_HOST_LOG")
	if err != nil {
		return nil, err
	}
	if logFile != nil {
		output = io.MultiWriter(h.log, logFile)
	}
	handshake := Handshake
	if value, ok := os.LookupEnv("GO18_COOKIE_VALUE"); ok {
		handshake.MagicCookieValue = value
	}
	versioned := map[int]plugin.PluginSet{}
	for _, part := range strings.Split(envOr("GO18_VERSIONS", "1"), ",") {
		v, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("invalid GO18_VERSIONS %q", os.Getenv("GO18_VERSIONS"))
		}
		versioned[v] = plugins
	}
	config := &plugin.ClientConfig{
		HandshakeConfig:     handshake,
		VersionedPlugins:    versioned,
		AllowedProtocols:    []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:            os.Getenv("GO18_AUTOMTLS") == "1",
		GRPCBrokerMultiplex: os.Getenv("GO18_MULTIPLEX") == "1",
		StartTimeout:        startTimeout,
		SyncStdout:          writerOrDiscard(syncStdout),
		SyncStderr:          writerOrDiscard(syncStderr),
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       LoggerName,
			Level:      hclog.Trace,
			Output:     output,
			JSONFormat: true,
		}),
	}
	group, tempDir := os.Getenv("GO18_SOCKET_GROUP"), os.Getenv("GO18_SOCKET_TEMPDIR")
	if group != "" || tempDir != "" {
		config.UnixSocketConfig = &plugin.UnixSocketConfig{Group: group, TempDir: tempDir}
	}
	shell := []string{"sh", "-c", execCommand(command)}
	if os.Getenv("GO18_RUNNER") == "1" {
		config.RunnerFunc = func(_ hclog.Logger, spec *exec.Cmd, socketDir string) (runner.Runner, error) {
			cmd := exec.Command(shell[0], shell[1:]...)
			cmd.Env, cmd.Stdin = spec.Env, spec.Stdin
			h.Report["runner_socket_dir"] = socketDir
			return h.newRunner(cmd)
		}
	} else {
		h.cmd = exec.Command(shell[0], shell[1:]...)
		config.Cmd = h.cmd
	}
	h.Report["automtls"] = config.AutoMTLS
	h.Client = plugin.NewClient(config)
	return h, nil
}

func envOr(name, fallback string) string {
	if value, ok := os.LookupEnv(name); ok {
		return value
	}
	return fallback
}

// execCommand prefixes "exec " so that the plugin, not a shell, is the host's child.
func execCommand(command string) string {
	if strings.HasPrefix(strings.TrimSpace(command), "exec ") {
		return command
	}
	return "exec " + command
}

// Connect starts the plugin, records where it listens and how the socket looks,
// and dispenses name.
func (h *Host) Connect(name string) (interface{}, error) {
	addr, err := h.Client.Start()
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	h.Report["network"] = addr.Network()
	h.Report["address"] = addr.String()
	h.Report["negotiated_version"] = h.Client.NegotiatedVersion()
	if addr.Network() == "unix" {
		h.Report["socket"] = describePath(addr.String())
		h.Report["socket_dir"] = describePath(dirOf(addr.String()))
	}
	rpc, err := h.Client.Client()
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if err := rpc.Ping(); err != nil {
		return nil, fmt.Errorf("ping: %w", err)
	}
	h.Report["ping"] = "ok"
	raw, err := rpc.Dispense(name)
	if err != nil {
		return nil, fmt.Errorf("dispense: %w", err)
	}
	return raw, nil
}

func dirOf(path string) string {
	if i := strings.LastIndex(path, "/"); i > 0 {
		return path[:i]
	}
	return "/"
}

func describePath(path string) map[string]interface{} {
	info, err := os.Stat(path)
	if err != nil {
		return map[string]interface{}{"path": path, "error": err.Error()}
	}
	d := map[string]interface{}{"path": path, "mode": fmt.Sprintf("%04o", info.Mode().Perm())}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		d["gid"] = st.Gid
	}
	return d
}

// Finish kills the plugin (timed), records how it ended and prints the report.
// It returns the exit code for the host: 0 when err is nil.
func (h *Host) Finish(err error) int {
	started := time.Now()
	h.Client.Kill()
	h.Report["kill_ms"] = float64(time.Since(started).Microseconds()) / 1000
	h.Pending.Wait()
	h.Report["forced_kill"] = h.forcedKill()
	h.mu.Lock()
	cmd := h.cmd
	h.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		h.Report["plugin_pid"] = cmd.Process.Pid
		h.Report["plugin_alive_after_kill"] = syscall.Kill(cmd.Process.Pid, 0) == nil
	}
	if cmd != nil && cmd.ProcessState != nil {
		h.Report["plugin_exit"] = cmd.ProcessState.String()
	}
	if dir, ok := h.Report["runner_socket_dir"].(string); ok && dir != "" {
		_, statErr := os.Stat(dir)
		h.Report["runner_socket_dir_removed"] = errors.Is(statErr, os.ErrNotExist)
	}
	h.Report["ok"] = err == nil
	if err != nil {
		h.Report["error"] = err.Error()
	}
	for _, f := range h.files {
		_ = f.Close()
	}
	out, jerr := json.Marshal(h.Report)
	if jerr != nil {
		fmt.Fprintf(os.Stderr, "host18: encoding the report: %s\n", jerr)
		return 1
	}
	fmt.Println(string(out))
	if err != nil {
		fmt.Fprintf(os.Stderr, "host18: %s\n--- go-plugin log (tail) ---\n%s\n", err, tail(h.log.String(), 40))
		return 1
	}
	return 0
}

func (h *Host) forcedKill() bool {
	for _, line := range strings.Split(h.log.String(), "\n") {
		var e map[string]interface{}
		if json.Unmarshal([]byte(line), &e) == nil && e["@message"] == GracefulFailMsg {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// cmdRunner is a minimal runner.Runner over exec.Cmd, for RunnerFunc.
type cmdRunner struct {
	cmd            *exec.Cmd
	stdout, stderr io.ReadCloser
}

func (h *Host) newRunner(cmd *exec.Cmd) (*cmdRunner, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.cmd = cmd
	h.mu.Unlock()
	return &cmdRunner{cmd: cmd, stdout: stdout, stderr: stderr}, nil
}

func (r *cmdRunner) Start(context.Context) error                      { return r.cmd.Start() }
func (r *cmdRunner) Diagnose(context.Context) string                  { return "" }
func (r *cmdRunner) Stdout() io.ReadCloser                            { return r.stdout }
func (r *cmdRunner) Stderr() io.ReadCloser                            { return r.stderr }
func (r *cmdRunner) Name() string                                     { return r.cmd.Path }
func (r *cmdRunner) Wait(context.Context) error                       { return r.cmd.Wait() }
func (r *cmdRunner) PluginToHost(n, a string) (string, string, error) { return n, a, nil }
func (r *cmdRunner) HostToPlugin(n, a string) (string, string, error) { return n, a, nil }

func (r *cmdRunner) ID() string {
	if r.cmd.Process == nil {
		return ""
	}
	return strconv.Itoa(r.cmd.Process.Pid)
}

func (r *cmdRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}
