package kinfercmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.yaml.in/yaml/v3"

	"github.com/kinfer/kinfer/internal/config"
	"github.com/kinfer/kinfer/internal/orttest"
	"github.com/kinfer/kinfer/processor"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runCmd runs `kinfer run --config cfgPath args...` in this process, with
// metrics on an ephemeral loopback port, and returns the HTTP address it
// serves and a stop function (SIGTERM-like cancel) that returns the logs.
func runCmd(t *testing.T, cfgPath string, args ...string) (addr string, stop func() string) {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- cmdRun(ctx, append([]string{"--config", cfgPath, "--metrics-listen", "127.0.0.1:0", "--log-level", "info"}, args...), io.Discard, logs)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kinfer run logs:\n%s", logs.String())
		}
	})
	stop = func() string {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("kinfer run: %v\n%s", err, logs.String())
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("kinfer run did not stop\n%s", logs.String())
		}
		return logs.String()
	}
	deadline := time.Now().Add(30 * time.Second)
	for addr == "" {
		select {
		case err := <-done:
			t.Fatalf("kinfer run exited early: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("kinfer run never served metrics\n%s", logs.String())
		}
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving metrics" {
				addr = line.Addr
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return addr, stop
}

// get fetches http://addr+path and returns the status and body.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrapeHTTP reads /metrics the way Prometheus does: the text format,
// parsed.
func scrapeHTTP(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// sumOf sums a family's counter, gauge or untyped values over the series
// whose labels include want; histograms give their sample count.
func sumOf(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var sum float64
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// histSum is the sum of observations of a histogram family.
func histSum(fams map[string]*dto.MetricFamily, name string) float64 {
	var s float64
	if f := fams[name]; f != nil {
		for _, m := range f.GetMetric() {
			s += m.GetHistogram().GetSampleSum()
		}
	}
	return s
}

// seriesNames are the names a PromQL query can select from the families:
// a histogram's _bucket, _sum and _count, a summary's quantiles, _sum and
// _count, everything else its own name.
func seriesNames(fams map[string]*dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for name, f := range fams {
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[name], out[name+"_sum"], out[name+"_count"] = true, true, true
		default:
			out[name] = true
		}
	}
	return out
}

// /healthz answers whatever the readiness, /readyz says why it is not
// ready, and pprof is served only when asked for.
func TestServeHTTP(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "kinfer_test_total", Help: "x"}))
	notReady := errors.New("not yet joined the consumer group")
	// serveHTTP logs the address it listens on.
	addrOf := func(withPprof bool, ready func() error) (string, func()) {
		logs := &syncBuffer{}
		l := slog.New(slog.NewJSONHandler(logs, nil))
		stop, err := serveHTTP("127.0.0.1:0", reg, ready, withPprof, l)
		if err != nil {
			t.Fatal(err)
		}
		var line struct{ Addr string }
		json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line)
		return line.Addr, stop
	}
	addr, stop := addrOf(false, func() error { return notReady })
	if code, body := get(t, addr, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, addr, "/readyz"); code != 503 || !strings.Contains(body, "not yet joined") {
		t.Fatalf("/readyz while not ready: %d %q", code, body)
	}
	if code, _ := get(t, addr, "/debug/pprof/"); code != 404 {
		t.Fatalf("pprof served without --pprof: %d", code)
	}
	if code, body := get(t, addr, "/metrics"); code != 200 || !strings.Contains(body, "kinfer_test_total 0") {
		t.Fatalf("/metrics: %d %q", code, body)
	}
	stop()
	addr, stop = addrOf(true, func() error { return nil })
	defer stop()
	if code, body := get(t, addr, "/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz when ready: %d %q", code, body)
	}
	if code, body := get(t, addr, "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("pprof with --pprof: %d %.80q", code, body)
	}
}

// --- deploy/ checks: the dashboard, the alert rules and docs/metrics.md
// may name only metrics that kinfer exports. ---

var (
	shortRunOnce  sync.Once
	shortRunFams  map[string]*dto.MetricFamily
	shortRunError string
)

// shortRun runs `kinfer run` on an in-process Kafka over a few hundred
// records, some corrupt, and returns what /metrics then shows: every
// family that a working pipeline exports (histogram and counter vectors
// appear only once observed). Shared by the deploy tests.
func shortRun(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	orttest.Require(t)
	shortRunOnce.Do(func() {
		// If doShortRun stops this test (t.Fatal), later callers see this.
		shortRunError = "the short run failed in an earlier test"
		shortRunFams, shortRunError = doShortRun(t)
	})
	if shortRunError != "" {
		t.Fatal(shortRunError)
	}
	return shortRunFams
}

func doShortRun(t *testing.T) (map[string]*dto.MetricFamily, string) {
	tp := topics{in: "ops-in", out: "ops-out", dlq: "ops-dlq"}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, tp.in, tp.out, tp.dlq))
	if err != nil {
		return nil, err.Error()
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	cfgPath := writeConfig(t, brokers, tp, "")
	enableMetrics(t, cfgPath)
	const n = 300
	newProducer(t, brokers, tp, loadFixture(t), nil).produce(0, n, func(i int) string {
		if i%50 == 7 {
			return "corrupt"
		}
		return ""
	}, 0)
	addr, stop := runCmd(t, cfgPath)
	defer stop()
	readOutputs(t, brokers, tp, n, time.Minute)
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(20 * time.Second)
	for {
		fams = scrapeHTTP(t, addr)
		// Lag appears with the first end-offset listing or fetch, the
		// acknowledgement counters just after the output the reader saw.
		if sumOf(fams, "kinfer_records_produced_total", nil)+sumOf(fams, "kinfer_records_dead_lettered_total", nil) == n &&
			len(fams["kinfer_consumer_lag_records"].GetMetric()) == partitions {
			break
		}
		if time.Now().After(deadline) {
			return nil, "short run: metrics never caught up with the outputs"
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fams, ""
}

// enableMetrics turns the test config's metrics endpoint on.
func enableMetrics(t *testing.T, cfgPath string) {
	t.Helper()
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "metrics:\n  disabled: true\n", "metrics:\n  listen: 127.0.0.1:0\n", 1)
	if s == string(b) {
		t.Fatal("test config has no metrics section to enable")
	}
	if err := os.WriteFile(cfgPath, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// promqlKeywords are identifiers in PromQL that are not metric names when
// they are not followed by "(" (aggregators may be: "sum by (x) (...)").
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true, "inf": true, "nan": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

// metricNames returns the metric names a PromQL expression selects. It
// understands what kinfer's dashboard and rules use: functions,
// aggregations with by/without, vector matching, label matchers, range
// and subquery brackets, numbers and durations, strings, comments and
// Grafana's $variables. It refuses {__name__=...} selectors, which it
// cannot check.
func metricNames(expr string) ([]string, error) {
	var names []string
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipString := func(i int) (int, error) {
		q := expr[i]
		for j := i + 1; j < len(expr); j++ {
			if expr[j] == '\\' && q != '`' {
				j++
				continue
			}
			if expr[j] == q {
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string at %d", i)
	}
	// skipGroup skips from an opening bracket to its match, over strings.
	skipGroup := func(i int, open, close byte) (int, error) {
		depth := 0
		for j := i; j < len(expr); {
			switch c := expr[j]; {
			case c == '"' || c == '\'' || c == '`':
				k, err := skipString(j)
				if err != nil {
					return 0, err
				}
				j = k
				continue
			case c == open:
				depth++
			case c == close:
				depth--
				if depth == 0 {
					if open == '{' && strings.Contains(expr[i:j], "__name__") {
						return 0, fmt.Errorf("a __name__ matcher at %d cannot be checked", i)
					}
					return j + 1, nil
				}
			}
			j++
		}
		return 0, fmt.Errorf("unbalanced %q at %d", open, i)
	}
	nextNonSpace := func(i int) byte {
		for ; i < len(expr); i++ {
			if c := expr[i]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				return c
			}
		}
		return 0
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '{':
			j, err := skipGroup(i, '{', '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipGroup(i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				j, err := skipGroup(i, '{', '}')
				if err != nil {
					return nil, err
				}
				i = j
			}
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			i = j
			switch next := nextNonSpace(j); {
			case word == "by" || word == "without" || word == "on" || word == "ignoring" || word == "group_left" || word == "group_right":
				if next == '(' {
					k := strings.IndexByte(expr[j:], '(')
					end, err := skipGroup(j+k, '(', ')')
					if err != nil {
						return nil, err
					}
					i = end
				}
			case next == '(' || promqlKeywords[word]:
				// a function or an aggregation
			default:
				names = append(names, word)
			}
		default:
			i++
		}
	}
	return names, nil
}

func TestMetricNames(t *testing.T) {
	cases := []struct {
		expr string
		want []string
	}{
		{`rate(a_total[5m])`, []string{"a_total"}},
		{`sum by (model, reason) (rate(kinfer_x_total{model=~"$model", reason!="a b"}[$__rate_interval]))`, []string{"kinfer_x_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))`, []string{"h_bucket"}},
		{`sum without(instance) (a) / on(job) group_left(model) b_info > 0.5`, []string{"a", "b_info"}},
		{`a unless on (job) (b > 0 or c offset 1h)`, []string{"a", "b", "c"}},
		{"max_over_time(a[10m:1m]) # a comment naming fake_metric\n+ 1e3 * x", []string{"a", "x"}},
		{`label_replace(up_x, "dst", "$1", "src", "(.*)")`, []string{"up_x"}},
		{`count(a) bool == 0`, []string{"a"}},
	}
	for _, c := range cases {
		got, err := metricNames(c.expr)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("metricNames(%q) = %v, %v; want %v", c.expr, got, err, c.want)
		}
	}
	if _, err := metricNames(`{__name__=~"kinfer_.*"}`); err == nil {
		t.Error("a __name__ selector was accepted")
	}
	if _, err := metricNames(`rate(a[5m]`); err != nil {
		t.Errorf("an unbalanced paren is PromQL's problem, not ours: %v", err)
	}
	if _, err := metricNames(`a{x="1"`); err == nil {
		t.Error("an unbalanced brace was accepted")
	}
}

// dashboardExprs returns every PromQL expression in a Grafana dashboard
// (panel targets, nested row panels) and the metrics its template
// variables query (label_values(metric, label)), by where they are.
func dashboardExprs(t *testing.T, path string) (exprs map[string]string, varMetrics map[string]string, titles []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	exprs, varMetrics = map[string]string{}, map[string]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			titles = append(titles, p.Title)
			for _, tg := range p.Targets {
				exprs[fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	lv := regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*,\s*[a-zA-Z_]+\s*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		sm := lv.FindStringSubmatch(q)
		if sm == nil {
			t.Fatalf("%s: variable %q: query %q is not label_values(metric, label)", path, v.Name, q)
		}
		varMetrics["variable "+v.Name] = sm[1]
	}
	return exprs, varMetrics, titles
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// checkNames fails for every expression naming a metric the short run did
// not export, and returns all names seen.
func checkNames(t *testing.T, file string, exprs map[string]string, exported map[string]bool) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	keys := make([]string, 0, len(exprs))
	for k := range exprs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, where := range keys {
		names, err := metricNames(exprs[where])
		if err != nil {
			t.Errorf("%s: %s: %v", file, where, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: %s: %q selects no metric", file, where, exprs[where])
		}
		for _, n := range names {
			seen[n] = true
			if !exported[n] {
				t.Errorf("%s: %s: metric %s is not exported by kinfer (expr %q)", file, where, n, exprs[where])
			}
		}
	}
	return seen
}

// The Grafana dashboard queries only metrics kinfer exports, and covers
// throughput, latency, lag, batch size, padding and dead letters.
func TestDeployDashboardMetrics(t *testing.T) {
	exported := seriesNames(shortRun(t))
	path := filepath.Join(repoRoot(t), "deploy/grafana/kinfer.json")
	exprs, vars, titles := dashboardExprs(t, path)
	if len(exprs) < 10 {
		t.Fatalf("%s: only %d queries", path, len(exprs))
	}
	for where, m := range vars {
		exprs[where] = m
	}
	seen := checkNames(t, path, exprs, exported)
	for _, must := range []string{
		"kinfer_records_consumed_total", "kinfer_records_produced_total", "kinfer_records_dead_lettered_total",
		"kinfer_end_to_end_latency_seconds_bucket", "kinfer_consumer_lag_records", "kinfer_model_batch_size_rows_bucket",
		"kinfer_model_padding_ratio_sum", "kinfer_model_inference_seconds_bucket", "kinfer_model_queue_wait_seconds_bucket",
	} {
		if !seen[must] {
			t.Errorf("%s: no panel queries %s", path, must)
		}
	}
	if !t.Failed() {
		t.Logf("%d queries over %d panels name %d metrics, all exported", len(exprs), len(titles), len(seen))
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T, path string) ruleFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rf
}

// The alert rules query only metrics kinfer exports, and the Kubernetes
// PrometheusRule carries exactly the same groups as the file promtool
// checks.
func TestDeployAlertMetrics(t *testing.T) {
	exported := seriesNames(shortRun(t))
	root := repoRoot(t)
	path := filepath.Join(root, "deploy/prometheus/alerts.yaml")
	rf := readRules(t, path)
	exprs := map[string]string{}
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			exprs["alert "+r.Alert+r.Record] = r.Expr
			alerts[r.Alert] = true
		}
	}
	checkNames(t, path, exprs, exported)
	for _, must := range []string{"KinferConsumerLagGrowing", "KinferDeadLetterRateHigh", "KinferModelReloadRefused", "KinferNoProgress"} {
		if !alerts[must] {
			t.Errorf("%s: no alert %s", path, must)
		}
	}

	b, err := os.ReadFile(filepath.Join(root, "deploy/k8s/prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Kind string   `yaml:"kind"`
		Spec ruleFile `yaml:"spec"`
	}
	if err := yaml.Unmarshal(b, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Kind != "PrometheusRule" || fmt.Sprintf("%+v", pr.Spec) != fmt.Sprintf("%+v", rf) {
		t.Fatalf("deploy/k8s/prometheusrule.yaml differs from deploy/prometheus/alerts.yaml: copy the groups over")
	}
}

// docs/metrics.md documents exactly the kinfer_ metrics the code exports
// (franz-go's kinfer_kafka_ client metrics are documented as a group).
func TestDeployMetricsDoc(t *testing.T) {
	fams := shortRun(t)
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs/metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(kinfer_[a-z0-9_]+)`").FindAllStringSubmatch(string(b), -1) {
		documented[m[1]] = true
	}
	// Families that exist but only appear after an event a clean short
	// run does not have.
	eventOnly := map[string]bool{}
	for name := range fams {
		if strings.HasPrefix(name, "kinfer_") && !strings.HasPrefix(name, "kinfer_kafka_") && !documented[name] {
			t.Errorf("docs/metrics.md: %s is exported but not in the table", name)
		}
	}
	for name := range documented {
		if fams[name] == nil && !eventOnly[name] {
			t.Errorf("docs/metrics.md: %s is documented but not exported", name)
		}
	}
	if !strings.Contains(string(b), "kinfer_kafka_") {
		t.Error("docs/metrics.md does not mention the franz-go client metrics (kinfer_kafka_)")
	}
}

// The pipeline configs shipped in deploy/ build against the model and
// schema the image carries (at /opt/kinfer, here the repository), every
// file the compose setup mounts exists, and the Kubernetes pods get more
// time to stop than kinfer takes to drain.
func TestDeployPipelineConfigs(t *testing.T) {
	orttest.Require(t)
	root := repoRoot(t)
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy/k8s/configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	compose, err := os.ReadFile(filepath.Join(root, "deploy/compose/pipeline.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	drain := map[string]time.Duration{}
	for name, text := range map[string]string{"k8s": cm.Data["pipeline.yaml"], "compose": string(compose)} {
		if !strings.Contains(text, "/opt/kinfer/") {
			t.Fatalf("%s pipeline does not use the image's /opt/kinfer", name)
		}
		p := filepath.Join(t.TempDir(), "pipeline.yaml")
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(text, "/opt/kinfer/", root+"/")), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(p)
		if err != nil {
			t.Fatalf("%s pipeline: %v", name, err)
		}
		if cfg.Metrics.Listen != "0.0.0.0:9464" || cfg.Kafka.InstanceID != "" {
			t.Errorf("%s pipeline: metrics.listen %q (want 0.0.0.0:9464), instance_id %q (want none)", name, cfg.Metrics.Listen, cfg.Kafka.InstanceID)
		}
		pl, err := processor.Build(context.Background(), cfg, modelLoader(nil, nil), processor.BuildOptions{})
		if err != nil {
			t.Fatalf("%s pipeline: %v", name, err)
		}
		pl.Close()
		drain[name] = cfg.Processing.DrainTimeout
	}

	var dep struct {
		Spec struct {
			Template struct {
				Spec struct {
					Grace int `yaml:"terminationGracePeriodSeconds"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	b, err = os.ReadFile(filepath.Join(root, "deploy/k8s/deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &dep); err != nil {
		t.Fatal(err)
	}
	if grace := time.Duration(dep.Spec.Template.Spec.Grace) * time.Second; grace < drain["k8s"]+15*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v leaves under 15s past drain_timeout %v: the kubelet would kill draining members", grace, drain["k8s"])
	}

	// kubectl apply -k applies what the kustomization lists: everything.
	var kz struct {
		Resources []string `yaml:"resources"`
	}
	b, err = os.ReadFile(filepath.Join(root, "deploy/k8s/kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &kz); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "deploy/k8s/*.yaml"))
	var want []string
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" {
			want = append(want, base)
		}
	}
	got := slices.Sorted(slices.Values(kz.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("deploy/k8s/kustomization.yaml lists %v, the folder holds %v", got, want)
	}

	var cf struct {
		Services map[string]struct {
			Image       string   `yaml:"image"`
			Volumes     []string `yaml:"volumes"`
			StopGrace   string   `yaml:"stop_grace_period"`
			DependsOn   any      `yaml:"depends_on"`
			Environment any      `yaml:"environment"`
		} `yaml:"services"`
	}
	b, err = os.ReadFile(filepath.Join(root, "deploy/compose/compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"kafka", "kinfer", "prometheus", "grafana"} {
		if _, ok := cf.Services[s]; !ok {
			t.Errorf("compose: no service %q", s)
		}
	}
	if img := cf.Services["kafka"].Image; img != "apache/kafka:4.1.1" {
		t.Errorf("compose: kafka image %q", img)
	}
	for name, s := range cf.Services {
		for _, v := range s.Volumes {
			host := strings.SplitN(v, ":", 2)[0]
			if _, err := os.Stat(filepath.Join(root, "deploy/compose", host)); err != nil {
				t.Errorf("compose: service %s mounts %s: %v", name, host, err)
			}
		}
	}
	if g, err := time.ParseDuration(cf.Services["kinfer"].StopGrace); err != nil || g <= drain["compose"] {
		t.Errorf("compose: kinfer stop_grace_period %q must exceed drain_timeout %v", cf.Services["kinfer"].StopGrace, drain["compose"])
	}
}
