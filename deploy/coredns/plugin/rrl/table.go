package rrl

import (
	"container/list"
	"sync"
	"time"
)

// account is the rate-limiting state of one key (client prefix, category and, depending on the
// category, a name and type). Its balance is kept in time rather than in responses: it gains
// one second of credit per second, a response costs 1s/ALLOWANCE, it is capped at one second
// (ALLOWANCE responses) and floored at -window (window*ALLOWANCE responses owed). A response
// that leaves the balance negative is suppressed.
type account struct {
	key        string
	balance    time.Duration
	last       time.Time
	suppressed uint64 // responses suppressed since the balance last allowed one
}

// verdict is the outcome of charging one response to an account.
type verdict struct {
	limited bool   // suppress the response
	nth     uint64 // when limited: 1 for the first suppressed response in a row, 2 for the next...
	evicted bool   // a least recently used account was evicted to make room
}

// table holds at most max accounts; when it is full the least recently used one is evicted.
// One mutex guards it: the work under it is a map lookup and a few additions.
type table struct {
	mu       sync.Mutex
	max      int
	accounts map[string]*list.Element // values of the list elements are *account
	lru      list.List                // front: most recently used
}

func newTable(max int) *table {
	return &table{max: max, accounts: make(map[string]*list.Element)}
}

// debit charges a response costing cost to the account key at time now; window is the floor
// of the balance.
func (t *table) debit(key string, now time.Time, cost, window time.Duration) verdict {
	t.mu.Lock()
	defer t.mu.Unlock()

	var v verdict
	var a *account
	if e, ok := t.accounts[key]; ok {
		t.lru.MoveToFront(e)
		a = e.Value.(*account)
		if elapsed := now.Sub(a.last); elapsed > 0 {
			a.balance += elapsed
		}
		if a.balance > time.Second {
			a.balance = time.Second
		}
	} else {
		if len(t.accounts) >= t.max {
			oldest := t.lru.Back()
			delete(t.accounts, oldest.Value.(*account).key)
			t.lru.Remove(oldest)
			v.evicted = true
		}
		a = &account{key: key, balance: time.Second}
		t.accounts[key] = t.lru.PushFront(a)
	}
	a.last = now
	a.balance -= cost
	if a.balance < -window {
		a.balance = -window
	}
	if a.balance < 0 {
		a.suppressed++
		v.limited, v.nth = true, a.suppressed
	} else {
		a.suppressed = 0
	}
	return v
}

// len returns the number of accounts.
func (t *table) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.accounts)
}
