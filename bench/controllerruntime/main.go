// Benchmark only: the controller-runtime side of `bench/run.ts --only controller-rt`
// (bench/controller_rt.ts). The same controller as bench/controller_rt_kube.ts: Widgets
// (bench.denokube.dev/v1) as primaries, each reconcile reads the Widget from the cache, applies
// one owned ConfigMap (server-side apply) and patches the Widget's status; it owns ConfigMaps.
// It prints SYNCED when its caches have synced, then one RESULT line of JSON when every Widget
// has been reconciled once and every expected edit (spec.editedAt, set by the driver) has been
// seen, and exits.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

var widgetGVK = schema.GroupVersionKind{Group: "bench.denokube.dev", Version: "v1", Kind: "Widget"}

type reconciler struct {
	client.Client
	n, edits   int
	started    time.Time
	mu         sync.Mutex
	seen       map[types.NamespacedName]bool
	editSeen   map[string]bool
	latencies  []float64
	churn      []float64
	churnLast  int64
	reconciles int
	waveMs     float64
	done       chan struct{}
	closed     bool
}

func (r *reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	w := &unstructured.Unstructured{}
	w.SetGroupVersionKind(widgetGVK)
	if err := r.Get(ctx, req.NamespacedName, w); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	value, _, _ := unstructured.NestedString(w.Object, "spec", "value")
	editedAt, _, _ := unstructured.NestedInt64(w.Object, "spec", "editedAt")
	phase, _, _ := unstructured.NestedString(w.Object, "spec", "phase")
	cm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata": map[string]any{
			"name":      w.GetName() + "-owned",
			"namespace": w.GetNamespace(),
			"labels":    map[string]any{"role": "owned"},
			"ownerReferences": []any{map[string]any{
				"apiVersion":         "bench.denokube.dev/v1",
				"kind":               "Widget",
				"name":               w.GetName(),
				"uid":                string(w.GetUID()),
				"controller":         true,
				"blockOwnerDeletion": true,
			}},
		},
		"data": map[string]any{"value": value},
	}}
	//nolint:staticcheck // client.Apply with unstructured is the plain SSA path.
	if err := r.Patch(ctx, cm, client.Apply, client.FieldOwner("bench-controller"), client.ForceOwnership); err != nil {
		return reconcile.Result{}, err
	}
	status := fmt.Sprintf(`{"status":{"observedGeneration":%d,"value":%q}}`, w.GetGeneration(), value)
	if err := r.Status().Patch(ctx, w, client.RawPatch(types.MergePatchType, []byte(status))); err != nil {
		return reconcile.Result{}, err
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reconciles++
	r.seen[req.NamespacedName] = true
	if len(r.seen) == r.n && r.waveMs == 0 {
		r.waveMs = float64(now.Sub(r.started).Microseconds()) / 1000
		fmt.Printf("WAVE %.1f\n", r.waveMs)
	}
	if editedAt > 0 {
		id := req.String() + "@" + strconv.FormatInt(editedAt, 10)
		if !r.editSeen[id] {
			r.editSeen[id] = true
			latency := float64(now.UnixMicro()-editedAt*1000) / 1000
			if phase == "churn" {
				r.churn = append(r.churn, latency)
				r.churnLast = now.UnixMilli()
			} else {
				r.latencies = append(r.latencies, latency)
			}
		}
	}
	if r.waveMs > 0 && len(r.latencies)+len(r.churn) >= r.edits && !r.closed {
		r.closed = true
		close(r.done)
	}
	return reconcile.Result{}, nil
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return -1
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

func peakRssKiB() int64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return -1
}

func main() {
	started := time.Now()
	kubeconfig := flag.String("config", "", "kubeconfig path (controller-runtime owns --kubeconfig)")
	namespace := flag.String("namespace", "", "namespace of the Widgets")
	n := flag.Int("n", 0, "how many Widgets to expect")
	edits := flag.Int("edits", 0, "how many edits to expect")
	concurrency := flag.Int("concurrency", 4, "MaxConcurrentReconciles")
	timeout := flag.Duration("timeout", 20*time.Minute, "give up after")
	flag.Parse()

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		panic(err)
	}
	// No client-side rate limit (as the kube side): the server's APF protects it.
	cfg.QPS = -1
	cfg.Burst = -1
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Metrics: server.Options{BindAddress: "0"},
		Cache:   cache.Options{DefaultNamespaces: map[string]cache.Config{*namespace: {}}},
	})
	if err != nil {
		panic(err)
	}
	r := &reconciler{
		Client:   mgr.GetClient(),
		n:        *n,
		edits:    *edits,
		started:  started,
		seen:     map[types.NamespacedName]bool{},
		editSeen: map[string]bool{},
		done:     make(chan struct{}),
	}
	widget := &unstructured.Unstructured{}
	widget.SetGroupVersionKind(widgetGVK)
	err = ctrl.NewControllerManagedBy(mgr).
		// Skip status-only updates of the Widget (its own status patch), as the kube side does
		// with predicates.generationChanged.
		For(widget, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&corev1.ConfigMap{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: *concurrency}).
		Complete(r)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	go func() {
		// Register both informers first: WaitForCacheSync only waits for informers that exist.
		for _, obj := range []client.Object{widget, &corev1.ConfigMap{}} {
			if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
				panic(err)
			}
		}
		if mgr.GetCache().WaitForCacheSync(ctx) {
			fmt.Printf("SYNCED %.1f\n", float64(time.Since(started).Microseconds())/1000)
		}
	}()
	go func() {
		select {
		case <-r.done:
		case <-ctx.Done():
		}
		r.mu.Lock()
		lat := append([]float64(nil), r.latencies...)
		churn := append([]float64(nil), r.churn...)
		churnLast := r.churnLast
		result := map[string]any{
			"waveMs":     r.waveMs,
			"reconciles": r.reconciles,
			"edits":      len(lat),
		}
		r.mu.Unlock()
		sort.Float64s(lat)
		sort.Float64s(churn)
		result["churnEdits"] = len(churn)
		result["churnP50Ms"] = quantile(churn, 0.5)
		result["churnP99Ms"] = quantile(churn, 0.99)
		result["churnLastMs"] = churnLast
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		result["editP50Ms"] = quantile(lat, 0.5)
		result["editP99Ms"] = quantile(lat, 0.99)
		result["peakRssKiB"] = peakRssKiB()
		result["heapBytes"] = ms.HeapAlloc
		line, _ := json.Marshal(result)
		fmt.Printf("RESULT %s\n", line)
		os.Exit(0)
	}()
	if err := mgr.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
