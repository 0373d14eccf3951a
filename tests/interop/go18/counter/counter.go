// Package counter is go-plugin's examples/bidirectional protocol (services
// proto.Counter and proto.AddHelper) as a go-plugin 1.8 GRPCPlugin, plus the
// reverse direction (proto.HelperSource, counterpb/helper.proto): the plugin
// serves an AddHelper on a broker id and the host dials it.
package counter

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"gointerop.example/go18/counterpb"
)

// PluginName is the dispense name.
const PluginName = "counter"

// Plugin is the counter GRPCPlugin (host and plugin side).
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
}

// GRPCServer registers Counter (which dials the host's AddHelper on every Put)
// and HelperSource (which serves an AddHelper of the plugin's own).
func (p *Plugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	counterpb.RegisterCounterServer(s, &counterServer{broker: broker, values: map[string]int64{}})
	counterpb.RegisterHelperSourceServer(s, &helperSource{broker: broker})
	return nil
}

// GRPCClient returns the host side.
func (p *Plugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return &Client{
		counter: counterpb.NewCounterClient(conn),
		source:  counterpb.NewHelperSourceClient(conn),
		broker:  broker,
	}, nil
}

// Adder is the AddHelper both sides serve: a + b.
type Adder struct {
	counterpb.UnimplementedAddHelperServer
}

// Sum adds.
func (Adder) Sum(_ context.Context, req *counterpb.SumRequest) (*counterpb.SumResponse, error) {
	return &counterpb.SumResponse{R: req.A + req.B}, nil
}

// Client is the host side of the counter protocol.
type Client struct {
	counter counterpb.CounterClient
	source  counterpb.HelperSourceClient
	broker  *plugin.GRPCBroker
}

// Put serves an AddHelper on a fresh broker id for the call; the plugin dials it.
func (c *Client) Put(key string, value int64) error {
	id := c.broker.NextId()
	var mu sync.Mutex
	var server *grpc.Server
	stopped := false
	go c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		counterpb.RegisterAddHelperServer(s, Adder{})
		mu.Lock()
		defer mu.Unlock()
		server = s
		if stopped {
			s.Stop()
		}
		return s
	})
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		if server != nil {
			server.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := c.counter.Put(ctx, &counterpb.PutRequest{AddServer: id, Key: key, Value: value})
	return err
}

// Get returns the count of key.
func (c *Client) Get(key string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.counter.Get(ctx, &counterpb.GetRequest{Key: key})
	if err != nil {
		return 0, err
	}
	return resp.Value, nil
}

// Reverse asks the plugin for a broker id it serves an AddHelper on, dials it
// and returns Sum(a, b) and the id.
func (c *Client) Reverse(a, b int64) (int64, uint32, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.source.Open(ctx, &counterpb.Empty{})
	if err != nil {
		return 0, 0, fmt.Errorf("HelperSource.Open: %w", err)
	}
	id := uint32(resp.Value)
	conn, err := c.broker.Dial(id)
	if err != nil {
		return 0, id, fmt.Errorf("broker.Dial(%d): %w", id, err)
	}
	defer conn.Close()
	sum, err := counterpb.NewAddHelperClient(conn).Sum(ctx, &counterpb.SumRequest{A: a, B: b})
	if err != nil {
		return 0, id, fmt.Errorf("AddHelper.Sum over broker id %d: %w", id, err)
	}
	return sum.R, id, nil
}

type counterServer struct {
	counterpb.UnimplementedCounterServer
	broker *plugin.GRPCBroker
	mu     sync.Mutex
	values map[string]int64
}

func (s *counterServer) Put(ctx context.Context, req *counterpb.PutRequest) (*counterpb.Empty, error) {
	conn, err := s.broker.Dial(req.AddServer)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := counterpb.NewAddHelperClient(conn).Sum(ctx, &counterpb.SumRequest{A: s.values[req.Key], B: req.Value})
	if err != nil {
		return nil, err
	}
	s.values[req.Key] = r.R
	return &counterpb.Empty{}, nil
}

func (s *counterServer) Get(_ context.Context, req *counterpb.GetRequest) (*counterpb.GetResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &counterpb.GetResponse{Value: s.values[req.Key]}, nil
}

type helperSource struct {
	counterpb.UnimplementedHelperSourceServer
	broker *plugin.GRPCBroker
}

// Open serves an AddHelper on a new broker id (until the broker closes) and returns the id.
func (h *helperSource) Open(context.Context, *counterpb.Empty) (*counterpb.GetResponse, error) {
	id := h.broker.NextId()
	go h.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		counterpb.RegisterAddHelperServer(s, Adder{})
		return s
	})
	return &counterpb.GetResponse{Value: int64(id)}, nil
}
