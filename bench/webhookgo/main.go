// Test infrastructure only: the controller-runtime side of the webhook benchmark (bench/webhook.ts).
//
//	webhookgo serve -port 9443 -certdir DIR   controller-runtime's webhook server with the same
//	                                          validating handler as bench/webhook_server.ts
//	webhookgo load -url U -ca F -conns N -seconds S -body F
//	                                          keep-alive HTTPS load on N connections; prints JSON
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

type foo struct {
	Spec struct {
		Replicas int `json:"replicas"`
	} `json:"spec"`
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	port := fs.Int("port", 9443, "port")
	certDir := fs.String("certdir", "", "directory with tls.crt and tls.key")
	_ = fs.Parse(args)
	srv := webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: *port, CertDir: *certDir})
	srv.Register("/validate", &webhook.Admission{Handler: admission.HandlerFunc(
		func(_ context.Context, req admission.Request) admission.Response {
			var o foo
			if err := json.Unmarshal(req.Object.Raw, &o); err != nil {
				return admission.Errored(http.StatusBadRequest, err)
			}
			if o.Spec.Replicas > 10 {
				return admission.Denied(fmt.Sprintf("spec.replicas must be at most 10, got %d", o.Spec.Replicas))
			}
			return admission.Allowed("")
		})})
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	go func() {
		// Tell the parent when it answers.
		for {
			c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", *port), &tls.Config{InsecureSkipVerify: true})
			if err == nil {
				c.Close()
				fmt.Println("listening")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	if err := srv.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type result struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	Rps      float64 `json:"rps"`
	P50Ms    float64 `json:"p50Ms"`
	P99Ms    float64 `json:"p99Ms"`
	Denied   int     `json:"denied"`
}

func load(args []string) {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	url := fs.String("url", "", "URL")
	caFile := fs.String("ca", "", "CA bundle")
	conns := fs.Int("conns", 16, "connections")
	seconds := fs.Float64("seconds", 5, "duration")
	bodyFile := fs.String("body", "", "request body")
	_ = fs.Parse(args)
	ca, err := os.ReadFile(*caFile)
	if err != nil {
		panic(err)
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConnsPerHost: *conns,
		MaxConnsPerHost:     *conns,
		// HTTP/1.1 keep-alive, as the API server's webhook client.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	// Warm up the connections.
	var warm sync.WaitGroup
	for i := 0; i < *conns; i++ {
		warm.Add(1)
		go func() {
			defer warm.Done()
			if r, err := client.Post(*url, "application/json", bytes.NewReader(body)); err == nil {
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
		}()
	}
	warm.Wait()
	deadline := time.Now().Add(time.Duration(*seconds * float64(time.Second)))
	var mu sync.Mutex
	var all []float64
	errors, denied := 0, 0
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			e, d := 0, 0
			for time.Now().Before(deadline) {
				t0 := time.Now()
				r, err := client.Post(*url, "application/json", bytes.NewReader(body))
				if err != nil {
					e++
					continue
				}
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				if r.StatusCode != 200 {
					e++
					continue
				}
				if bytes.Contains(b, []byte(`"allowed":false`)) {
					d++
				}
				mine = append(mine, float64(time.Since(t0).Microseconds())/1000)
			}
			mu.Lock()
			all = append(all, mine...)
			errors += e
			denied += d
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	sort.Float64s(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return all[int(p*float64(len(all)-1))]
	}
	out, _ := json.Marshal(result{
		Requests: len(all), Errors: errors, Seconds: elapsed, Rps: float64(len(all)) / elapsed,
		P50Ms: pct(0.5), P99Ms: pct(0.99), Denied: denied,
	})
	fmt.Println(string(out))
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: webhookgo serve|load ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "load":
		load(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "usage: webhookgo serve|load ...")
		os.Exit(2)
	}
}
