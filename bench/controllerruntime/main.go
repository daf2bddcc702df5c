// Benchmark only: the controller-runtime side of `bench/run.ts --only controller-rt`
// (bench/controller_rt.ts). The same controller as bench/controller_rt_kube.ts: Widgets
// (bench.denokube.dev/v1) as primaries, each reconcile reads the Widget from the cache, applies
// one owned ConfigMap (server-side apply) and patches the Widget's status; it owns ConfigMaps.
// The protocol (the same on both sides; the driver decides when a run is complete):
//   - SYNCED <ms since start> once its caches have synced;
//   - WAVE <ms since start> <wall ms> when every Widget has been reconciled once (in leader mode:
//     once since this replica leads);
//   - EDIT <name> <editedAt> <wall ms> the first time a reconcile ends that saw a Widget with
//     that spec.editedAt (set by the driver), so the driver does the edit accounting itself;
//   - PROGRESS <Widgets seen> <reconciles> <failed reconciles> every 10 s (the first failures'
//     messages go to stderr);
//   - with --leader: ACQUIRED <wall ms> when this replica leads (a leader-election runnable
//     starts) and FIRST <wall ms> when its first reconcile starts;
//   - on SIGTERM: RESULT <json> (reconciles, peak RSS, heap), then a graceful stop (the lease is
//     released on cancel) and STOPPED <wall ms>.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

var widgetGVK = schema.GroupVersionKind{Group: "bench.denokube.dev", Version: "v1", Kind: "Widget"}

type reconciler struct {
	client.Client
	n          int
	started    time.Time
	mu         sync.Mutex
	seen       map[types.NamespacedName]bool
	editSeen   map[string]bool
	reconciles int
	failures   int
	waveMs     float64
	first      bool
}

// failed counts a failed reconcile (retried with the controller's backoff) and reports the first few.
func (r *reconciler) failed(err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures++
	if r.failures <= 5 {
		fmt.Fprintf(os.Stderr, "reconcile failed: %v\n", err)
	}
	return err
}

func wallMs(t time.Time) float64 { return float64(t.UnixMicro()) / 1000 }

func (r *reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	r.mu.Lock()
	if !r.first {
		r.first = true
		fmt.Printf("FIRST %.1f\n", wallMs(time.Now()))
	}
	r.mu.Unlock()
	w := &unstructured.Unstructured{}
	w.SetGroupVersionKind(widgetGVK)
	if err := r.Get(ctx, req.NamespacedName, w); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	value, _, _ := unstructured.NestedString(w.Object, "spec", "value")
	editedAt, _, _ := unstructured.NestedInt64(w.Object, "spec", "editedAt")
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
		return reconcile.Result{}, r.failed(err)
	}
	status := fmt.Sprintf(`{"status":{"observedGeneration":%d,"value":%q}}`, w.GetGeneration(), value)
	if err := r.Status().Patch(ctx, w, client.RawPatch(types.MergePatchType, []byte(status))); err != nil {
		return reconcile.Result{}, r.failed(err)
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reconciles++
	r.seen[req.NamespacedName] = true
	if len(r.seen) == r.n && r.waveMs == 0 {
		r.waveMs = float64(now.Sub(r.started).Microseconds()) / 1000
		fmt.Printf("WAVE %.1f %.1f\n", r.waveMs, wallMs(now))
	}
	if editedAt > 0 {
		// Only the driver's edits set spec.editedAt; the driver matches these lines to its edits.
		id := req.Name + " " + strconv.FormatInt(editedAt, 10)
		if !r.editSeen[id] {
			r.editSeen[id] = true
			fmt.Printf("EDIT %s %.1f\n", id, wallMs(now))
		}
	}
	return reconcile.Result{}, nil
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
	concurrency := flag.Int("concurrency", 4, "MaxConcurrentReconciles")
	timeout := flag.Duration("timeout", 20*time.Minute, "give up after")
	lease := flag.String("leader", "", "leader election on this Lease (in --namespace), with warmup")
	flag.Parse()

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		panic(err)
	}
	// No client-side rate limit (as the kube side): the server's APF protects it.
	cfg.QPS = -1
	cfg.Burst = -1
	options := ctrl.Options{
		Metrics: server.Options{BindAddress: "0"},
		Cache:   cache.Options{DefaultNamespaces: map[string]cache.Config{*namespace: {}}},
		// Read the Widget from the cache, as the kube side does (unstructured reads are live by
		// default in controller-runtime).
		Client: client.Options{Cache: &client.CacheOptions{Unstructured: true}},
	}
	if *lease != "" {
		options.LeaderElection = true
		options.LeaderElectionID = *lease
		options.LeaderElectionNamespace = *namespace
		options.LeaderElectionResourceLock = "leases"
		// Release the lease when the manager stops, so a standby acquires it at once (the
		// identity is controller-runtime's default: the hostname and a random suffix).
		options.LeaderElectionReleaseOnCancel = true
	}
	mgr, err := ctrl.NewManager(cfg, options)
	if err != nil {
		panic(err)
	}
	r := &reconciler{
		Client:   mgr.GetClient(),
		n:        *n,
		started:  started,
		seen:     map[types.NamespacedName]bool{},
		editSeen: map[string]bool{},
	}
	widget := &unstructured.Unstructured{}
	widget.SetGroupVersionKind(widgetGVK)
	warmup := *lease != ""
	err = ctrl.NewControllerManagedBy(mgr).
		// Skip status-only updates of the Widget (its own status patch), as the kube side does
		// with predicates.generationChanged.
		For(widget, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&corev1.ConfigMap{}).
		// EnableWarmup: a standby starts the controller's sources (informers and queue) before it
		// leads, so the new leader's workers start on a filled queue.
		WithOptions(controller.Options{MaxConcurrentReconciles: *concurrency, EnableWarmup: &warmup}).
		Complete(r)
	if err != nil {
		panic(err)
	}
	if *lease != "" {
		// A leader-election runnable: started when this replica has acquired the lease.
		err = mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			fmt.Printf("ACQUIRED %.1f\n", wallMs(time.Now()))
			<-ctx.Done()
			return nil
		}))
		if err != nil {
			panic(err)
		}
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
		ticker := time.NewTicker(10 * time.Second)
		defer ticker.Stop()
		for {
			select {
			case <-ticker.C:
				r.mu.Lock()
				fmt.Printf("PROGRESS %d %d %d\n", len(r.seen), r.reconciles, r.failures)
				r.mu.Unlock()
			case <-ctx.Done():
				return
			}
		}
	}()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-stop:
		case <-ctx.Done():
		}
		r.mu.Lock()
		result := map[string]any{"waveMs": r.waveMs, "reconciles": r.reconciles, "failures": r.failures}
		r.mu.Unlock()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		result["peakRssKiB"] = peakRssKiB()
		result["heapBytes"] = ms.HeapAlloc
		line, _ := json.Marshal(result)
		fmt.Printf("RESULT %s\n", line)
		// A graceful stop: the leader-election runnables stop, then the lease is released.
		cancel()
	}()
	if err := mgr.Start(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("STOPPED %.1f\n", wallMs(time.Now()))
}
