package azblob

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/asr-project/asr/replica/target"
)

// BenchmarkWritePages writes 4 MiB pages to an Azurite disk with 1 and 4
// writers, as the engine's copy does.
func BenchmarkWritePages(b *testing.B) {
	cs := os.Getenv(EnvConnectionString)
	if cs == "" {
		b.Skip("no emulator: eval \"$(.ci/azurite/azurite.sh start)\"")
	}
	for _, writers := range []int{1, 4} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			tg := openAzurite(b, cs, testContainer(b, cs), "", defaultOptions())
			const size = 64 << 20
			if err := tg.CreateDisk(b.Context(), "d", size); err != nil {
				b.Fatal(err)
			}
			p := randomBytes(3, target.MaxWrite)
			b.SetBytes(target.MaxWrite)
			b.ResetTimer()
			var wg sync.WaitGroup
			next := make(chan int64)
			for range writers {
				wg.Go(func() {
					for off := range next {
						if err := tg.WritePages(b.Context(), "d", off, p); err != nil {
							b.Error(err)
						}
					}
				})
			}
			for i := range b.N {
				next <- int64(i) * target.MaxWrite % size
			}
			close(next)
			wg.Wait()
		})
	}
}
