package engine

import "context"

// Stats is a snapshot of the IKE runtime for operators (Prometheus,
// diagnostics): the runtime's counters and the gauges behind them.
type Stats struct {
	RuntimeStats
	// IKESAs is the number of live IKE SA machines (any state).
	IKESAs int
	// HalfOpenIKESAs are responder IKE SAs between IKE_SA_INIT and IKE_AUTH
	// (RFC 7296 §2.6).
	HalfOpenIKESAs int
	// CookiesRequired: new IKE_SA_INIT requests must carry a cookie now.
	CookiesRequired bool
	// Watchers is the number of live event subscriptions.
	Watchers int
}

// Stats returns a snapshot of the runtime's counters and gauges.
func (e *Engine) Stats(ctx context.Context) (Stats, error) {
	return do(ctx, e, func(st *state) (Stats, error) {
		rt := st.rt
		return Stats{
			RuntimeStats:    rt.stats.clone(),
			IKESAs:          len(rt.all),
			HalfOpenIKESAs:  rt.cookies.HalfOpen(),
			CookiesRequired: rt.cookies.Required(),
			Watchers:        len(st.watchers),
		}, nil
	})
}
