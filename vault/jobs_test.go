package vault

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain doubles as the helper process of TestKilledHolderJobIsInterrupted:
// with holderEnv set, the test binary takes VM locks, records Running jobs,
// says "ready" and waits to be killed.
func TestMain(m *testing.M) {
	if state := os.Getenv(holderEnv); state != "" {
		holdAndWait(state)
		return
	}
	os.Exit(m.Run())
}

const holderEnv = "ASR_VAULT_TEST_HOLDER"

func holdAndWait(state string) {
	v, err := Open(state, time.Second)
	if err == nil {
		for _, vm := range []string{"web", "db"} {
			if _, err = v.LockVM(vm); err != nil {
				break
			}
			if err = v.Update(func(tx *Tx) error { return tx.PutJob(&Job{Kind: "replicate", VM: vm, State: JobRunning}) }); err != nil {
				break
			}
		}
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	time.Sleep(time.Hour)
}

func putJobs(t *testing.T, v *Vault, jobs ...Job) {
	t.Helper()
	err := v.Update(func(tx *Tx) error {
		for i := range jobs {
			if err := tx.PutJob(&jobs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// states returns each VM's job states in order, as "web:Running db:Failed".
func states(t *testing.T, v *Vault) string {
	t.Helper()
	var jobs []Job
	if err := v.View(func(tx *Tx) (err error) { jobs, err = tx.Jobs(); return }); err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, j := range jobs {
		s = append(s, j.VM+":"+j.State)
		if j.State == JobInterrupted && (j.Ended.IsZero() || !strings.HasPrefix(j.Error, "interrupted:")) {
			t.Errorf("interrupted job %+v has no end or error", j)
		}
	}
	return strings.Join(s, " ")
}

func TestLockVMMarksItsRunningJobsInterrupted(t *testing.T) {
	v := newVault(t)
	putJobs(t, v,
		Job{VM: "web", State: JobRunning, Started: time.Now().Add(-time.Hour), Steps: []Step{{Name: "copy", State: JobRunning}}},
		Job{VM: "web", State: JobSucceeded},
		Job{VM: "db", State: JobRunning})
	l, err := v.LockVM("web")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if got, want := states(t, v), "web:Interrupted web:Succeeded db:Running"; got != want {
		t.Fatalf("jobs %s, want %s", got, want)
	}
	var j Job
	v.View(func(tx *Tx) (err error) { j, err = tx.Job(1); return })
	if j.Steps[0].State != JobInterrupted || j.Duration < time.Hour {
		t.Errorf("interrupted job %+v", j)
	}
}

func TestSweepJobsLeavesJobsWhoseLockIsHeld(t *testing.T) {
	v := newVault(t)
	l, err := v.LockVM("web") // this process is running web's job
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	putJobs(t, v, Job{VM: "web", State: JobRunning}, Job{VM: "db", State: JobRunning}, Job{VM: "db", State: JobFailed})
	if err := v.SweepJobs(); err != nil {
		t.Fatal(err)
	}
	if got, want := states(t, v), "web:Running db:Interrupted db:Failed"; got != want {
		t.Fatalf("jobs %s, want %s", got, want)
	}
}

// TestKilledHolderJobIsInterrupted runs jobs in a real process and kills it
// with SIGKILL: its flocks go with it, so the vault can tell its jobs died.
func TestKilledHolderJobIsInterrupted(t *testing.T) {
	v := newVault(t)
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), holderEnv+"="+v.Path())
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("helper: %q", line)
	}
	// While it lives, its jobs are running.
	if err := v.SweepJobs(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.TryLockVM("web"); !errors.Is(err, ErrLocked) {
		t.Fatalf("web while the helper holds it: %v", err)
	}
	if got, want := states(t, v), "web:Running db:Running"; got != want {
		t.Fatalf("jobs %s, want %s", got, want)
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	l, err := v.LockVM("web")
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	if got, want := states(t, v), "web:Interrupted db:Running"; got != want {
		t.Fatalf("after LockVM: jobs %s, want %s", got, want)
	}
	if err := v.SweepJobs(); err != nil {
		t.Fatal(err)
	}
	if got, want := states(t, v), "web:Interrupted db:Interrupted"; got != want {
		t.Fatalf("after SweepJobs: jobs %s, want %s", got, want)
	}
}

// TestLockVMWithoutStaleJobsWritesNothing: bbolt commits a new meta page
// even for an empty transaction, and LockVM runs before every job.
func TestLockVMWithoutStaleJobsWritesNothing(t *testing.T) {
	v := newVault(t)
	putJobs(t, v, Job{VM: "web", State: JobSucceeded})
	before := fileHash(t, v.Path())
	l, err := v.LockVM("web")
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	if err := v.SweepJobs(); err != nil {
		t.Fatal(err)
	}
	if fileHash(t, v.Path()) != before {
		t.Fatal("the state file changed")
	}
}
