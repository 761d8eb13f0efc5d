package throttle

import "time"

// Schedule is a bandwidth policy: WorkHours bytes per second from WorkStart
// to WorkEnd (durations from local midnight, wall clock) on Monday to
// Friday, OtherHours bytes per second otherwise; 0 means unlimited. When
// WorkEnd is before WorkStart the window runs overnight, from a weekday
// evening to the next morning. Equal bounds mean no work hours.
type Schedule struct {
	WorkHours, OtherHours int64
	WorkStart, WorkEnd    time.Duration
}

// Rate returns the limit in force at now, read in now's location (local
// for time.Now()). Pass it to Limit.
func (s Schedule) Rate(now time.Time) int64 {
	if s.working(now) {
		return s.WorkHours
	}
	return s.OtherHours
}

func (s Schedule) working(now time.Time) bool {
	h, m, sec := now.Clock()
	tod := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
		time.Duration(sec)*time.Second + time.Duration(now.Nanosecond())
	weekday := func(d time.Weekday) bool { return d >= time.Monday && d <= time.Friday }
	today := now.Weekday()
	switch {
	case s.WorkStart == s.WorkEnd:
		return false
	case s.WorkStart < s.WorkEnd:
		return weekday(today) && tod >= s.WorkStart && tod < s.WorkEnd
	default:
		yesterday := (today + 6) % 7
		return weekday(today) && tod >= s.WorkStart || weekday(yesterday) && tod < s.WorkEnd
	}
}
