// Test infrastructure only: the client-go side of `deno task bench` (bench/run.ts builds it from
// the Go module cache). One measurement per process, like bench/measure.ts: an informer over the
// pods of a namespace, synced once; prints one line `RESULT {json}`.
//
//	clientgo-bench -kubeconfig k -namespace ns -n 10000 -format protobuf|json -mode watchlist|list [-strip]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
)

func cpuMs() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}

// peakRSS is VmHWM from /proc/self/status, in bytes.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			fields := strings.Fields(line)
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig path")
	namespace := flag.String("namespace", "", "namespace of the pods")
	n := flag.Int("n", 0, "expected number of pods")
	format := flag.String("format", "protobuf", "protobuf or json")
	mode := flag.String("mode", "watchlist", "watchlist or list")
	strip := flag.Bool("strip", false, "drop managedFields in a transform")
	flag.Parse()

	// The WatchListClient gate is read from the environment by client-go's feature gates.
	if *mode == "watchlist" {
		os.Setenv("KUBE_FEATURE_WatchListClient", "true")
	} else {
		os.Setenv("KUBE_FEATURE_WatchListClient", "false")
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		panic(err)
	}
	config.QPS = 1000
	config.Burst = 1000
	switch *format {
	case "protobuf":
		config.ContentType = "application/vnd.kubernetes.protobuf"
		config.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	case "json":
		config.ContentType = "application/json"
		config.AcceptContentTypes = "application/json"
		config.NegotiatedSerializer = serializer.NewCodecFactory(scheme.Scheme).WithoutConversion()
	default:
		panic("format: protobuf or json")
	}
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		panic(err)
	}
	base := heap()
	cpu0 := cpuMs()
	start := time.Now()
	factory := informers.NewSharedInformerFactoryWithOptions(clientset, 0, informers.WithNamespace(*namespace))
	informer := factory.Core().V1().Pods().Informer()
	if *strip {
		_ = informer.SetTransform(func(obj interface{}) (interface{}, error) {
			if accessor, err := meta.Accessor(obj); err == nil {
				accessor.SetManagedFields(nil)
			}
			return obj, nil
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	// Poll every millisecond: cache.WaitForCacheSync polls every 100 ms, too coarse to time.
	for !informer.HasSynced() {
		time.Sleep(time.Millisecond)
	}
	ms := float64(time.Since(start).Microseconds()) / 1000
	cpu := cpuMs() - cpu0
	objects := len(informer.GetStore().ListKeys())
	held := int64(heap()) - int64(base)
	rss := peakRSS()
	if *n > 0 && objects != *n {
		fmt.Fprintf(os.Stderr, "cached %d pods, expected %d\n", objects, *n)
		os.Exit(1)
	}
	// Keep the store alive until after the heap was measured.
	var first *corev1.Pod
	if items := informer.GetStore().List(); len(items) > 0 {
		first = items[0].(*corev1.Pod)
	}
	_ = first
	_ = metav1.Now
	cancel()
	out, _ := json.Marshal(map[string]interface{}{
		"ms": ms, "cpuMs": cpu, "heap": held, "objects": objects, "peakRss": rss,
	})
	fmt.Printf("RESULT %s\n", out)
}
