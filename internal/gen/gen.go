// Package gen makes realistic synthetic input records for the demo, the
// benchmarks and tests: card transactions whose features follow the fraud
// model's training distribution.
package gen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Transactions generates card transactions. About FraudRate of them follow
// the fraud pattern (large, foreign, at night, on young accounts).
type Transactions struct {
	rng       *rand.Rand
	n         int64
	FraudRate float64
	Accounts  int
}

// NewTransactions returns a deterministic generator for seed.
func NewTransactions(seed uint64) *Transactions {
	return &Transactions{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), FraudRate: 0.1, Accounts: 5000}
}

// Next returns the next transaction as an Avro native map for
// examples/fraud/transaction.avsc, and its key (the account id).
func (g *Transactions) Next() (key string, native map[string]any) {
	r := g.rng
	g.n++
	acct := fmt.Sprintf("acct-%05d", r.IntN(g.Accounts))
	fraud := r.Float64() < g.FraudRate
	avg := math.Exp(3.5 + 0.8*r.NormFloat64())
	amount := avg * math.Exp(0.5*r.NormFloat64())
	risk := min(1, math.Abs(0.2*r.NormFloat64()))
	dist := math.Abs(8 * r.ExpFloat64())
	hour := int32(r.IntN(24))
	count := int32(r.IntN(4))
	age := int32(30 + r.IntN(3000))
	foreign := int32(0)
	if r.Float64() < 0.05 {
		foreign = 1
	}
	if fraud {
		amount *= 3 + 4*r.Float64()
		risk = 0.4 + 0.6*r.Float64()
		dist = 200 + 2000*r.Float64()
		hour = int32(r.IntN(5))
		count = int32(3 + r.IntN(8))
		age = int32(1 + r.IntN(60))
		if r.Float64() < 0.6 {
			foreign = 1
		}
	}
	return acct, map[string]any{
		"transaction_id":   fmt.Sprintf("tx-%012d", g.n),
		"account_id":       acct,
		"amount":           math.Round(amount*100) / 100,
		"merchant_risk":    float32(risk),
		"distance_km":      float32(dist),
		"hour_of_day":      hour,
		"txn_count_1h":     count,
		"account_age_days": age,
		"is_foreign":       foreign,
		"avg_amount_30d":   math.Round(avg*100) / 100,
		"event_time":       time.Now().UTC().Truncate(time.Millisecond),
	}
}
