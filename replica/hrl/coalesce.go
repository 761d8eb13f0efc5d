package hrl

// Extent says that disk bytes [Off, Off+Len) hold logs[Log]'s file bytes
// [FileOff, FileOff+Len).
type Extent struct {
	Off, Len int64
	Log      int
	FileOff  int64
}

func (x Extent) end() int64 { return x.Off + x.Len }

// follows reports whether y continues x on the disk and in the same file,
// so the two can be one extent.
func (x Extent) follows(y Extent) bool {
	return x.Log == y.Log && x.end() == y.Off && x.FileOff+x.Len == y.FileOff
}

// Coalesce replays the entries of logs in order (last write wins, across
// the whole sequence) and returns the live extents: sorted by Off,
// non-overlapping, and with pieces contiguous on disk and in one log file
// merged. It reads no data; memory is proportional to the live extents.
func Coalesce(logs []*Log) []Extent {
	var m extentMap
	m.seed = 0x9E3779B97F4A7C15
	for i, l := range logs {
		if l == nil {
			continue
		}
		for _, e := range l.Entries {
			if e.Len > 0 {
				m.insert(Extent{Off: e.Off, Len: e.Len, Log: i, FileOff: e.FileOff})
			}
		}
	}
	out := make([]Extent, 0, m.n)
	m.walk(m.root, func(x Extent) {
		if k := len(out) - 1; k >= 0 && out[k].follows(x) {
			out[k].Len += x.Len
			return
		}
		out = append(out, x)
	})
	return out
}

// extentMap is a treap of non-overlapping extents keyed by Off. Nodes cut
// away by newer writes are kept on a free list, so the nodes ever allocated
// never exceed the peak number of live extents.
type extentMap struct {
	root, free *node
	n          int // live nodes
	seed       uint64
}

type node struct {
	x    Extent
	prio uint64
	l, r *node
}

// insert makes x the newest content of [x.Off, x.end()).
func (m *extentMap) insert(x Extent) {
	a, b := x.Off, x.end()
	left, rest := split(m.root, a)
	mid, right := split(rest, b)
	var tail *Extent // the part of an older extent that outlives x at b
	if mid != nil {
		if last := maxNode(mid); last.x.end() > b {
			t := cut(last.x, b)
			tail = &t
		}
		m.release(mid)
	}
	var cur *node // the node that holds x
	if left != nil {
		last := maxNode(left)
		if last.x.end() > a {
			if last.x.end() > b {
				t := cut(last.x, b)
				tail = &t
			}
			last.x.Len = a - last.x.Off
		}
		if last.x.follows(x) {
			last.x.Len += x.Len
			cur = last
		}
	}
	if tail != nil {
		right = merge(m.alloc(*tail), right)
	}
	if right != nil {
		if first := minNode(right); cur.extentOr(x).follows(first.x) {
			right = m.removeMin(right, &x, cur)
		}
	}
	if cur == nil {
		left = merge(left, m.alloc(x))
	}
	m.root = merge(left, right)
}

// extentOr is the extent n will hold once x is placed: n's own when x was
// absorbed into n, else x.
func (n *node) extentOr(x Extent) Extent {
	if n == nil {
		return x
	}
	return n.x
}

// removeMin drops the leftmost node of t, whose extent continues x, and
// adds its length to x (or to cur, the node that absorbed x).
func (m *extentMap) removeMin(t *node, x *Extent, cur *node) *node {
	if t.l != nil {
		t.l = m.removeMin(t.l, x, cur)
		return t
	}
	if cur != nil {
		cur.x.Len += t.x.Len
	} else {
		x.Len += t.x.Len
	}
	r := t.r
	t.l, t.r = nil, nil
	m.push(t)
	return r
}

// cut is the part of x from b on.
func cut(x Extent, b int64) Extent {
	return Extent{Off: b, Len: x.end() - b, Log: x.Log, FileOff: x.FileOff + (b - x.Off)}
}

func (m *extentMap) alloc(x Extent) *node {
	m.n++
	m.seed ^= m.seed << 13
	m.seed ^= m.seed >> 7
	m.seed ^= m.seed << 17
	n := m.free
	if n != nil {
		m.free = n.r
		*n = node{}
	} else {
		n = new(node)
	}
	n.x, n.prio = x, m.seed
	return n
}

func (m *extentMap) push(n *node) {
	m.n--
	n.r = m.free
	m.free = n
}

// release puts a whole subtree on the free list.
func (m *extentMap) release(t *node) {
	for t != nil {
		if t.l != nil {
			m.release(t.l)
		}
		r := t.r
		t.l = nil
		m.push(t)
		t = r
	}
}

// split returns the nodes with Off < key and those with Off >= key.
func split(t *node, key int64) (*node, *node) {
	if t == nil {
		return nil, nil
	}
	if t.x.Off < key {
		l, r := split(t.r, key)
		t.r = l
		return t, r
	}
	l, r := split(t.l, key)
	t.l = r
	return l, t
}

// merge joins a and b, every key of a below every key of b.
func merge(a, b *node) *node {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		a.r = merge(a.r, b)
		return a
	default:
		b.l = merge(a, b.l)
		return b
	}
}

func maxNode(t *node) *node {
	for t.r != nil {
		t = t.r
	}
	return t
}

func minNode(t *node) *node {
	for t.l != nil {
		t = t.l
	}
	return t
}

// walk visits the extents in Off order.
func (m *extentMap) walk(t *node, visit func(Extent)) {
	for t != nil {
		m.walk(t.l, visit)
		visit(t.x)
		t = t.r
	}
}
