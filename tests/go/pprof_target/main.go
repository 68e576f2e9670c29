// A real scrape target for ferro's pprof receiver tests: Go's own
// net/http/pprof handlers on 127.0.0.1 (a free port, printed on stdout as
// "listening ADDR"), with work running so that every profile has samples:
// a CPU burner, allocations kept live, contended mutexes and blocking
// channels. Built from the standard library only, so `go build` needs no
// module download.
package main

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"sync"
	"time"
)

var keep [][]byte

func burn() {
	sum := sha256.Sum256([]byte("ferro"))
	for {
		for i := 0; i < 10000; i++ {
			sum = sha256.Sum256(sum[:])
		}
		time.Sleep(time.Millisecond)
	}
}

func allocate() {
	for {
		buf := make([]byte, 64*1024)
		keep = append(keep, buf)
		if len(keep) > 64 {
			keep = keep[1:]
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func contend() {
	var mu sync.Mutex
	for i := 0; i < 4; i++ {
		go func() {
			for {
				mu.Lock()
				time.Sleep(100 * time.Microsecond)
				mu.Unlock()
			}
		}()
	}
	ch := make(chan int)
	go func() {
		for {
			time.Sleep(time.Millisecond)
			ch <- 1
		}
	}()
	for range ch {
	}
}

func main() {
	runtime.SetMutexProfileFraction(1)
	runtime.SetBlockProfileRate(1)
	go burn()
	go allocate()
	go contend()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening %s\n", listener.Addr())
	os.Stdout.Sync()
	if err := http.Serve(listener, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
