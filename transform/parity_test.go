package transform

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"sort"
	"testing"
)

// Parity with the reference implementations, on the fixtures made by
// testdata/transform/make_fixtures.py. Tolerances:
//
//   - MinMaxScaler, KBinsDiscretizer (exact quantiles), CountVectorizer,
//     HashingVectorizer counts, murmurhash3_32, vocabularies, tokenizers:
//     exactly equal.
//   - StandardScaler: mean, var, scale and outputs within 1e-12 relative
//     (Welford's streaming update against scikit-learn's two-pass sums).
//   - QuantileTransformer: quantiles exactly equal; outputs within 1e-12
//     (AS241 against scipy's ndtri; checked on its own to 1e-14).
//   - TfidfVectorizer, HashingVectorizer with l2: within 1e-12 relative
//     (log and sqrt may differ in the last bit between numpy and Go).
//   - Streaming quantiles past exact_limit: each boundary's rank within
//     epsilon*n of the exact one (quantile_test.go, TestParityLargeQuantiles).

type numericFixture struct {
	Columns        []string    `json:"columns"`
	FitRows        [][]float64 `json:"fit_rows"`
	ApplyRows      [][]float64 `json:"apply_rows"`
	StandardScaler struct {
		Mean, Var, Scale []float64
		NSamplesSeen     int64       `json:"n_samples_seen"`
		Apply            [][]float64 `json:"apply"`
	} `json:"standard_scaler"`
	MinMaxScaler map[string]struct {
		FeatureRange []float64   `json:"feature_range"`
		Clip         bool        `json:"clip"`
		DataMin      []float64   `json:"data_min"`
		DataMax      []float64   `json:"data_max"`
		Apply        [][]float64 `json:"apply"`
	} `json:"min_max_scaler"`
	KBins map[string]struct {
		BinEdges [][]float64 `json:"bin_edges"`
		NBins    []int       `json:"n_bins"`
		Apply    [][]int64   `json:"apply"`
	} `json:"kbins_discretizer"`
	QuantileTransformer struct {
		Quantiles [][]float64 `json:"quantiles"`
		Apply     [][]float64 `json:"apply"`
	} `json:"quantile_transformer"`
	NormPPF struct {
		P   []float64 `json:"p"`
		PPF []float64 `json:"ppf"`
	} `json:"norm_ppf"`
}

func loadNumeric(t *testing.T) *numericFixture {
	var f numericFixture
	readFixture(t, "numeric.json", &f)
	if len(f.FitRows) != 1000 || len(f.ApplyRows) != 200 {
		t.Fatalf("numeric.json: %d fit rows, %d apply rows", len(f.FitRows), len(f.ApplyRows))
	}
	return &f
}

func TestParityStandardScaler(t *testing.T) {
	f := loadNumeric(t)
	want := f.StandardScaler
	for _, elementwise := range []bool{false, true} {
		t.Run(fmt.Sprintf("elementwise=%v", elementwise), func(t *testing.T) {
			var cfg Config
			rows := columnsRows(f.Columns, f.FitRows)
			apps := columnsRows(f.Columns, f.ApplyRows)
			if elementwise {
				// One array field holding every column, one statistic per
				// position: StandardScaler on the matrix.
				cfg.Stages = []StageConfig{{Type: TypeScaleToZScore, Fields: []string{"x"}, Elementwise: true}}
				rows, apps = arrayRows(f.FitRows), arrayRows(f.ApplyRows)
			} else {
				cfg.Stages = []StageConfig{{Type: TypeScaleToZScore, Fields: f.Columns}}
			}
			p, arts := fitBind(t, mustNew(t, cfg), rows)
			art := arts.Stages[0].(*MomentsArtifact)
			for c := range f.Columns {
				var mean, vr, scale float64
				var count int64
				if elementwise {
					m := art.Fields[0]
					mean, vr, scale, count = m.Mean[c], m.Var[c], m.Scale[c], m.Count
				} else {
					m := art.Fields[c]
					mean, vr, scale, count = m.Mean[0], m.Var[0], m.Scale[0], m.Count
				}
				if count != want.NSamplesSeen {
					t.Errorf("%s: count %d, want %d", f.Columns[c], count, want.NSamplesSeen)
				}
				for _, x := range []struct {
					name      string
					got, want float64
				}{{"mean", mean, want.Mean[c]}, {"var", vr, want.Var[c]}, {"scale", scale, want.Scale[c]}} {
					if !near(x.got, x.want, 1e-12) {
						t.Errorf("%s: %s %v, StandardScaler %v", f.Columns[c], x.name, x.got, x.want)
					}
				}
			}
			for i, r := range apps {
				out := apply(t, p, r)
				for c, col := range f.Columns {
					var got float64
					if elementwise {
						got = out["x"].([]float64)[c]
					} else {
						got = out[col].(float64)
					}
					if w := want.Apply[i][c]; !near(got, w, 1e-12) {
						t.Errorf("row %d %s: %v, StandardScaler %v", i, col, got, w)
					}
				}
			}
		})
	}
}

func arrayRows(table [][]float64) []map[string]any {
	rows := make([]map[string]any, len(table))
	for i, r := range table {
		items := make([]any, len(r))
		for j, v := range r {
			items[j] = v
		}
		rows[i] = map[string]any{"x": items}
	}
	return rows
}

func TestParityMinMaxScaler(t *testing.T) {
	f := loadNumeric(t)
	for name, want := range f.MinMaxScaler {
		t.Run(name, func(t *testing.T) {
			st := StageConfig{Type: TypeScaleTo01, Fields: f.Columns, Clip: want.Clip}
			if want.FeatureRange[0] != 0 || want.FeatureRange[1] != 1 {
				st.Type = TypeScaleByMinMax
				st.OutputMin, st.OutputMax = ptr(want.FeatureRange[0]), ptr(want.FeatureRange[1])
			}
			p, arts := fitBind(t, mustNew(t, Config{Stages: []StageConfig{st}}), columnsRows(f.Columns, f.FitRows))
			art := arts.Stages[0].(*MinMaxArtifact)
			for c, col := range f.Columns {
				if art.Fields[c].Min[0] != want.DataMin[c] || art.Fields[c].Max[0] != want.DataMax[c] {
					t.Errorf("%s: range [%v, %v], MinMaxScaler [%v, %v]", col, art.Fields[c].Min[0], art.Fields[c].Max[0], want.DataMin[c], want.DataMax[c])
				}
			}
			for i, r := range columnsRows(f.Columns, f.ApplyRows) {
				out := apply(t, p, r)
				for c, col := range f.Columns {
					if got, w := out[col].(float64), want.Apply[i][c]; got != w {
						t.Errorf("row %d %s: %v, MinMaxScaler %v (exact)", i, col, got, w)
					}
				}
			}
		})
	}
}

func TestParityKBinsDiscretizer(t *testing.T) {
	f := loadNumeric(t)
	for name, want := range f.KBins {
		t.Run("n_bins="+name, func(t *testing.T) {
			var k int
			fmt.Sscan(name, &k)
			cfg := Config{Stages: []StageConfig{{Type: TypeBucketize, Fields: f.Columns, NumBuckets: k}}}
			p, arts := fitBind(t, mustNew(t, cfg), columnsRows(f.Columns, f.FitRows))
			art := arts.Stages[0].(*BucketsArtifact)
			for c, col := range f.Columns {
				got := art.Fields[c]
				if !got.Exact {
					t.Errorf("%s: 1000 values should be exact", col)
				}
				edges := want.BinEdges[c]
				wantB := []float64{}
				if edges != nil { // nil: a constant column, one bin
					wantB = edges[1 : len(edges)-1]
					if got.Min != edges[0] || got.Max != edges[len(edges)-1] {
						t.Errorf("%s: range [%v, %v], edges %v", col, got.Min, got.Max, edges)
					}
				}
				if !slices.Equal(got.Boundaries, wantB) {
					t.Errorf("%s: boundaries %v, KBinsDiscretizer %v", col, got.Boundaries, wantB)
				}
				if len(got.Boundaries)+1 != want.NBins[c] {
					t.Errorf("%s: %d buckets, KBinsDiscretizer %d", col, len(got.Boundaries)+1, want.NBins[c])
				}
			}
			for i, r := range columnsRows(f.Columns, f.ApplyRows) {
				out := apply(t, p, r)
				for c, col := range f.Columns {
					if got, w := out[col].(int64), want.Apply[i][c]; got != w {
						t.Errorf("row %d %s (%v): bucket %d, KBinsDiscretizer %d", i, col, r[col], got, w)
					}
				}
			}
			// apply_buckets with the same boundaries gives the same ids.
			for c, col := range f.Columns {
				bs := art.Fields[c].Boundaries
				if len(bs) == 0 {
					continue
				}
				ab := mustNew(t, Config{Stages: []StageConfig{{Type: TypeApplyBuckets, Fields: []string{col}, Boundaries: bs}}})
				for i, r := range columnsRows(f.Columns, f.ApplyRows) {
					if got := apply(t, ab, r)[col].(int64); got != want.Apply[i][c] {
						t.Errorf("apply_buckets row %d %s: %d, want %d", i, col, got, want.Apply[i][c])
					}
				}
			}
		})
	}
}

func TestParityNormPPF(t *testing.T) {
	f := loadNumeric(t)
	for i, p := range f.NormPPF.P {
		if got, want := normPPF(p), f.NormPPF.PPF[i]; !near(got, want, 1e-14) {
			t.Errorf("normPPF(%v) = %v, scipy %v", p, got, want)
		}
	}
}

func TestParityQuantileTransformer(t *testing.T) {
	f := loadNumeric(t)
	cfg := Config{Stages: []StageConfig{{Type: TypeScaleToGaussian, Fields: f.Columns, NumQuantiles: 100}}}
	p, arts := fitBind(t, mustNew(t, cfg), columnsRows(f.Columns, f.FitRows))
	art := arts.Stages[0].(*QuantilesArtifact)
	for c, col := range f.Columns {
		if !slices.Equal(art.Fields[c].Quantiles, f.QuantileTransformer.Quantiles[c]) {
			t.Errorf("%s: quantiles differ from QuantileTransformer's:\n got %v\nwant %v", col, art.Fields[c].Quantiles, f.QuantileTransformer.Quantiles[c])
		}
	}
	for i, r := range columnsRows(f.Columns, f.ApplyRows) {
		out := apply(t, p, r)
		for c, col := range f.Columns {
			if got, w := out[col].(float64), f.QuantileTransformer.Apply[i][c]; !near(got, w, 1e-12) {
				t.Errorf("row %d %s (%v): %v, QuantileTransformer %v", i, col, r[col], got, w)
			}
		}
	}
}

// ---------------------------------------------------------------- large quantiles

type largeFixture struct {
	N        int       `json:"n"`
	First    []float64 `json:"first"`
	Sum      float64   `json:"sum"`
	Distinct int       `json:"distinct"`
	BinEdges []float64 `json:"bin_edges"`
}

// largeValues regenerates quantiles_large.json's data set exactly.
func largeValues(n int) []float64 {
	const mul, add = 6364136223846793005, 1442695040888963407
	s := uint64(1)
	out := make([]float64, n)
	for i := range out {
		s = s*mul + add
		u := float64(s>>11) * 0x1p-53
		out[i] = math.Floor(float64(float64(u*u)*u)*100000) / 100
	}
	return out
}

func TestParityLargeQuantiles(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000,000 values")
	}
	var f largeFixture
	readFixture(t, "quantiles_large.json", &f)
	xs := largeValues(f.N)
	if !slices.Equal(xs[:len(f.First)], f.First) {
		t.Fatalf("generator differs from the fixture's: %v vs %v", xs[:len(f.First)], f.First)
	}
	exact := new(big.Float).SetPrec(512) // math.fsum: the correctly rounded sum
	for _, x := range xs {
		exact.Add(exact, big.NewFloat(x))
	}
	if sum, _ := exact.Float64(); sum != f.Sum {
		t.Fatalf("sum %v, fixture %v", sum, f.Sum)
	}
	sorted := slices.Clone(xs)
	slices.Sort(sorted)
	if d := len(slices.Compact(slices.Clone(sorted))); d != f.Distinct {
		t.Fatalf("%d distinct values, fixture says %d", d, f.Distinct)
	}
	rows := make([]map[string]any, len(xs))
	for i, x := range xs {
		rows[i] = map[string]any{"x": x}
	}
	want := f.BinEdges[1 : len(f.BinEdges)-1]

	// Exact (every value kept): numpy's edges exactly.
	cfg := Config{Stages: []StageConfig{{Type: TypeBucketize, Fields: []string{"x"}, NumBuckets: 10, ExactLimit: f.N}}}
	_, arts := fitBind(t, mustNew(t, cfg), rows)
	if got := arts.Stages[0].(*BucketsArtifact).Fields[0]; !got.Exact || !slices.Equal(got.Boundaries, want) {
		t.Errorf("exact: boundaries %v (exact %v), KBinsDiscretizer %v", got.Boundaries, got.Exact, want)
	}

	// Sketch (default exact_limit 100000, epsilon 0.001): every boundary's
	// rank range must come within epsilon*n of the target rank.
	cfg.Stages[0].ExactLimit = 0
	_, arts = fitBind(t, mustNew(t, cfg), rows)
	got := arts.Stages[0].(*BucketsArtifact).Fields[0]
	if got.Exact || got.Epsilon != DefaultEpsilon {
		t.Fatalf("sketch: exact %v, epsilon %v", got.Exact, got.Epsilon)
	}
	bound := DefaultEpsilon * float64(f.N)
	worst := 0.0
	for i := range want {
		target := math.Ceil(float64(i+1) / 10 * float64(f.N))
		// Boundaries merge when equal, so match each target to the closest
		// kept boundary's rank range.
		best := math.Inf(1)
		for _, b := range got.Boundaries {
			lo := float64(sort.SearchFloat64s(sorted, b) + 1)
			hi := float64(sort.Search(len(sorted), func(k int) bool { return sorted[k] > b }))
			d := math.Max(0, math.Max(lo-target, target-hi))
			best = math.Min(best, d)
		}
		worst = math.Max(worst, best)
		if best > bound {
			t.Errorf("decile %d: no boundary within rank %v of %v (closest %v off); boundaries %v, exact %v", i+1, bound, target, best, got.Boundaries, want)
		}
	}
	t.Logf("sketch boundaries %v vs exact %v: worst rank error %v (bound %v)", got.Boundaries, want, worst, bound)
}
