// Command yamuxecho18 drives hashicorp/yamux (the version go-plugin 1.8 uses) with
// go-plugin's session configuration, for testing another yamux implementation.
//
//	yamuxecho18 serve SOCKET        yamux server on the first connection to SOCKET:
//	                                every stream is echoed back, then closed
//	yamuxecho18 dial SOCKET N SIZE  yamux client: ping, then N concurrent streams each
//	                                write SIZE patterned bytes, close, and check the echo
package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/hashicorp/yamux"
)

func config() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = nil
	cfg.Logger = log.New(os.Stderr, "yamux ", log.LstdFlags)
	return cfg
}

func pattern(stream, size int) []byte {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte((i*7 + stream*13) % 251)
	}
	return data
}

func serve(path string) error {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	conn, err := ln.Accept()
	_ = ln.Close()
	if err != nil {
		return err
	}
	session, err := yamux.Server(conn, config())
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for {
		stream, err := session.Accept()
		if err != nil {
			break // the client went away
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer stream.Close()
			_, _ = io.Copy(stream, stream)
		}()
	}
	wg.Wait()
	fmt.Println("session over")
	return nil
}

func dial(path string, streams, size int) error {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return err
	}
	session, err := yamux.Client(conn, config())
	if err != nil {
		return err
	}
	defer session.Close()
	if _, err := session.Ping(); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	errs := make(chan error, streams)
	for n := 0; n < streams; n++ {
		go func(n int) {
			errs <- echo(session, n, size)
		}(n)
	}
	for n := 0; n < streams; n++ {
		if err := <-errs; err != nil {
			return err
		}
	}
	fmt.Printf("ok %d\n", streams)
	return nil
}

func echo(session *yamux.Session, n, size int) error {
	stream, err := session.OpenStream()
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	want := pattern(n, size)
	writeErr := make(chan error, 1)
	go func() {
		_, err := stream.Write(want)
		if err == nil {
			err = stream.Close() // FIN; reading goes on
		}
		writeErr <- err
	}()
	got, err := io.ReadAll(stream)
	if err != nil {
		return fmt.Errorf("stream %d read: %w", stream.StreamID(), err)
	}
	if err := <-writeErr; err != nil {
		return fmt.Errorf("stream %d write: %w", stream.StreamID(), err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("stream %d: echoed %d bytes, want %d identical", stream.StreamID(), len(got), len(want))
	}
	return nil
}

func main() {
	var err error
	switch {
	case len(os.Args) == 3 && os.Args[1] == "serve":
		err = serve(os.Args[2])
	case len(os.Args) == 5 && os.Args[1] == "dial":
		streams, err1 := strconv.Atoi(os.Args[3])
		size, err2 := strconv.Atoi(os.Args[4])
		if err1 != nil || err2 != nil {
			err = fmt.Errorf("N and SIZE are integers")
			break
		}
		err = dial(os.Args[2], streams, size)
	default:
		err = fmt.Errorf("usage: yamuxecho18 serve SOCKET | dial SOCKET N SIZE")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "yamuxecho18:", err)
		os.Exit(1)
	}
}
