package remote

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

// The Open Inference Protocol's tensor datatypes that kinfer has dtypes
// for. FP16, BF16, UINT16/32/64, INT16 and BYTES are refused at Load.
var (
	toDType = map[string]tensor.DType{
		"FP32":  tensor.Float32,
		"FP64":  tensor.Float64,
		"INT32": tensor.Int32,
		"INT64": tensor.Int64,
		"UINT8": tensor.Uint8,
		"INT8":  tensor.Int8,
		"BOOL":  tensor.Bool,
	}
	fromDType = map[tensor.DType]string{
		tensor.Float32: "FP32",
		tensor.Float64: "FP64",
		tensor.Int32:   "INT32",
		tensor.Int64:   "INT64",
		tensor.Uint8:   "UINT8",
		tensor.Int8:    "INT8",
		tensor.Bool:    "BOOL",
	}
)

// headerLength is the binary tensor data extension's header: the length
// of the JSON part of a body whose tensors follow it as raw bytes.
const headerLength = "Inference-Header-Content-Length"

// metadataTensor is one input or output in a model metadata reply.
type metadataTensor struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// metadata is GET /v2/models/{name}[/versions/{v}].
type metadata struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions"`
	Platform string           `json:"platform"`
	Inputs   []metadataTensor `json:"inputs"`
	Outputs  []metadataTensor `json:"outputs"`
}

func specsOf(what string, ts []metadataTensor) ([]handlers.TensorSpec, error) {
	if len(ts) == 0 {
		return nil, fmt.Errorf("the metadata lists no %s", what)
	}
	specs := make([]handlers.TensorSpec, 0, len(ts))
	for _, t := range ts {
		dt, ok := toDType[t.Datatype]
		if !ok {
			return nil, fmt.Errorf("%s %q has datatype %q; supported: FP32, FP64, INT32, INT64, UINT8, INT8, BOOL", what, t.Name, t.Datatype)
		}
		if t.Name == "" {
			return nil, fmt.Errorf("the metadata lists an %s without a name", what)
		}
		for _, d := range t.Shape {
			if d < -1 || d == 0 {
				return nil, fmt.Errorf("%s %q has shape %v; dims must be positive or -1", what, t.Name, t.Shape)
			}
		}
		specs = append(specs, handlers.TensorSpec{Name: t.Name, DType: dt, Shape: t.Shape})
	}
	return specs, nil
}

// params are the tensor parameters kinfer reads and writes.
type params struct {
	BinaryDataSize *int64 `json:"binary_data_size,omitempty"`
	BinaryData     *bool  `json:"binary_data,omitempty"`
}

// replyTensor is one output in an inference reply.
type replyTensor struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters *params         `json:"parameters"`
	Data       json.RawMessage `json:"data"`
}

// inferReply is the JSON part of POST .../infer's reply.
type inferReply struct {
	ModelName    string        `json:"model_name"`
	ModelVersion string        `json:"model_version"`
	ID           string        `json:"id"`
	Outputs      []replyTensor `json:"outputs"`
}

// encodeRequest writes an inference request for inputs (in the order of
// specs, already checked) asking for outputs. With binary, tensor data
// follows the JSON as raw little-endian bytes (the binary tensor data
// extension) and the returned jsonLen is the length of the JSON part;
// without it the data are JSON arrays in row-major order and jsonLen is
// the whole body.
func encodeRequest(buf []byte, id string, specs, outputs []handlers.TensorSpec, inputs map[string]*tensor.Tensor, bin bool) (body []byte, jsonLen int, err error) {
	if buf == nil {
		size := 256 + 64*len(specs) + 32*len(outputs)
		for _, s := range specs {
			if bin {
				size += inputs[s.Name].Bytes()
			} else {
				size += 12 * inputs[s.Name].Len()
			}
		}
		buf = make([]byte, 0, size)
	}
	b := buf[:0]
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, id)
	b = append(b, `,"inputs":[`...)
	for i, s := range specs {
		t := inputs[s.Name]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = strconv.AppendQuote(b, s.Name)
		b = append(b, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, `],"datatype":"`...)
		b = append(b, fromDType[t.DType]...)
		b = append(b, '"')
		if bin {
			b = append(b, `,"parameters":{"binary_data_size":`...)
			b = strconv.AppendInt(b, int64(t.Bytes()), 10)
			b = append(b, "}}"...)
			continue
		}
		b = append(b, `,"data":`...)
		if b, err = appendJSONData(b, t); err != nil {
			return nil, 0, fmt.Errorf("input %q: %w", s.Name, err)
		}
		b = append(b, '}')
	}
	b = append(b, `],"outputs":[`...)
	for i, s := range outputs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = strconv.AppendQuote(b, s.Name)
		if bin {
			b = append(b, `,"parameters":{"binary_data":true}`...)
		}
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	jsonLen = len(b)
	if bin {
		for _, s := range specs {
			b = appendRaw(b, inputs[s.Name])
		}
	}
	return b, jsonLen, nil
}

func appendJSONData(b []byte, t *tensor.Tensor) ([]byte, error) {
	b = append(b, '[')
	switch d := t.Data.(type) {
	case []float32:
		for i, v := range d {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("element %d is %v, which JSON cannot carry (set binary to send it)", i, v)
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
		}
	case []float64:
		for i, v := range d {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("element %d is %v, which JSON cannot carry (set binary to send it)", i, v)
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
		}
	case []int32:
		for i, v := range d {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(v), 10)
		}
	case []int64:
		for i, v := range d {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, v, 10)
		}
	case []uint8:
		for i, v := range d {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(v), 10)
		}
	case []int8:
		for i, v := range d {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(v), 10)
		}
	case []bool:
		for i, v := range d {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendBool(b, v)
		}
	default:
		return nil, fmt.Errorf("unsupported data %T", t.Data)
	}
	return append(b, ']'), nil
}

// appendRaw appends t's elements as little-endian bytes (bools as 0 or 1),
// the binary extension's layout.
func appendRaw(b []byte, t *tensor.Tensor) []byte {
	switch d := t.Data.(type) {
	case []float32:
		for _, v := range d {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	case []float64:
		for _, v := range d {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	case []int32:
		for _, v := range d {
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		}
	case []int64:
		for _, v := range d {
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
	case []uint8:
		b = append(b, d...)
	case []int8:
		for _, v := range d {
			b = append(b, byte(v))
		}
	case []bool:
		for _, v := range d {
			if v {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
	}
	return b
}

// decodeReply parses an inference reply. jsonLen is the binary
// extension's header, or -1 for an all-JSON body. Outputs come back as
// tensors of their declared dtypes; checking them against the specs is
// the caller's job.
func decodeReply(body []byte, jsonLen int) (*inferReply, map[string]*tensor.Tensor, error) {
	head, rest := body, []byte(nil)
	if jsonLen >= 0 {
		if jsonLen > len(body) {
			return nil, nil, fmt.Errorf("%s is %d but the body has %d bytes", headerLength, jsonLen, len(body))
		}
		head, rest = body[:jsonLen], body[jsonLen:]
	}
	var r inferReply
	if err := json.Unmarshal(head, &r); err != nil {
		return nil, nil, fmt.Errorf("decoding the reply: %w", err)
	}
	out := make(map[string]*tensor.Tensor, len(r.Outputs))
	for _, o := range r.Outputs {
		dt, ok := toDType[o.Datatype]
		if !ok {
			return nil, nil, fmt.Errorf("output %q has datatype %q, which kinfer cannot represent", o.Name, o.Datatype)
		}
		if _, dup := out[o.Name]; dup {
			return nil, nil, fmt.Errorf("output %q appears twice in the reply", o.Name)
		}
		n := 1
		for _, d := range o.Shape {
			if d < 0 || (d > 0 && n > math.MaxInt32/int(d)) {
				return nil, nil, fmt.Errorf("output %q has shape %v", o.Name, o.Shape)
			}
			n *= int(d)
		}
		t := &tensor.Tensor{DType: dt, Shape: o.Shape}
		if o.Parameters != nil && o.Parameters.BinaryDataSize != nil {
			size := *o.Parameters.BinaryDataSize
			if want := int64(n * dt.Size()); size != want {
				return nil, nil, fmt.Errorf("output %q: binary_data_size %d, but %v%v takes %d bytes", o.Name, size, dt, o.Shape, want)
			}
			if int64(len(rest)) < size {
				return nil, nil, fmt.Errorf("output %q: binary data truncated (%d bytes left, %d needed)", o.Name, len(rest), size)
			}
			t.Data = fromRaw(dt, rest[:size], n)
			rest = rest[size:]
		} else {
			data, err := decodeJSONData(dt, o.Data, n)
			if err != nil {
				return nil, nil, fmt.Errorf("output %q: %w", o.Name, err)
			}
			t.Data = data
		}
		if got := t.Len(); got != n {
			return nil, nil, fmt.Errorf("output %q: shape %v needs %d elements, data has %d", o.Name, o.Shape, n, got)
		}
		out[o.Name] = t
	}
	return &r, out, nil
}

// dropTrailingOne reshapes an output that came back with one more dim than
// its spec declares, that dim last and 1, to the declared rank: the same
// elements in the same order. MLServer does this to every 1-D output (its
// NumpyCodec turns a [N] array into shape [N,1], whatever the metadata
// says), so a scikit-learn "predict" declared [-1] comes back [N,1].
func dropTrailingOne(specs []handlers.TensorSpec, out map[string]*tensor.Tensor) {
	for _, s := range specs {
		t := out[s.Name]
		if t != nil && len(s.Shape) > 0 && len(t.Shape) == len(s.Shape)+1 && t.Shape[len(t.Shape)-1] == 1 {
			t.Shape = t.Shape[:len(t.Shape)-1]
		}
	}
}

func fromRaw(dt tensor.DType, raw []byte, n int) any {
	le := binary.LittleEndian
	switch dt {
	case tensor.Float32:
		d := make([]float32, n)
		for i := range d {
			d[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
		return d
	case tensor.Float64:
		d := make([]float64, n)
		for i := range d {
			d[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
		return d
	case tensor.Int32:
		d := make([]int32, n)
		for i := range d {
			d[i] = int32(le.Uint32(raw[4*i:]))
		}
		return d
	case tensor.Int64:
		d := make([]int64, n)
		for i := range d {
			d[i] = int64(le.Uint64(raw[8*i:]))
		}
		return d
	case tensor.Uint8:
		return bytes.Clone(raw[:n])
	case tensor.Int8:
		d := make([]int8, n)
		for i := range d {
			d[i] = int8(raw[i])
		}
		return d
	case tensor.Bool:
		d := make([]bool, n)
		for i := range d {
			d[i] = raw[i] != 0
		}
		return d
	}
	return nil
}

// decodeJSONData parses a reply tensor's "data": a flat array in
// row-major order, as the protocol says, or nested arrays, which some
// servers send. Booleans may come as true/false or 0/1.
func decodeJSONData(dt tensor.DType, raw json.RawMessage, n int) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, fmt.Errorf("no data")
	}
	if nested(raw) {
		var flat []json.RawMessage
		if err := flattenJSON(raw, &flat); err != nil {
			return nil, err
		}
		var b bytes.Buffer
		b.WriteByte('[')
		for i, v := range flat {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(v)
		}
		b.WriteByte(']')
		raw = b.Bytes()
	}
	// The shape is the server's word; the data's length is a fact. Do not
	// let a large shape allocate more than the data can fill.
	n = min(n, len(raw)/2+1)
	// JSON has no NaN, so servers written in Python write NaN as null
	// (MLServer's NumpyCodec does so on purpose; orjson does it to any
	// NaN). encoding/json would leave a null element at 0 without a word.
	if bytes.Contains(raw, []byte("null")) {
		if dt == tensor.Float32 || dt == tensor.Float64 {
			return decodeFloatsWithNulls(dt, raw)
		}
		if i := nullAt(raw); i >= 0 {
			return nil, fmt.Errorf("element %d is null, which %v data cannot hold", i, dt)
		}
	}
	var err error
	switch dt {
	case tensor.Float32:
		d := make([]float32, 0, n)
		err = json.Unmarshal(raw, &d)
		return d, err
	case tensor.Float64:
		d := make([]float64, 0, n)
		err = json.Unmarshal(raw, &d)
		return d, err
	case tensor.Int32:
		d := make([]int32, 0, n)
		err = json.Unmarshal(raw, &d)
		return d, err
	case tensor.Int64:
		d := make([]int64, 0, n)
		err = json.Unmarshal(raw, &d)
		return d, err
	case tensor.Int8:
		d := make([]int8, 0, n)
		err = json.Unmarshal(raw, &d)
		return d, err
	case tensor.Uint8:
		// encoding/json reads []uint8 as base64; go through a wider type.
		var w []uint16
		if err := json.Unmarshal(raw, &w); err != nil {
			return nil, err
		}
		d := make([]uint8, len(w))
		for i, v := range w {
			if v > math.MaxUint8 {
				return nil, fmt.Errorf("element %d is %d, out of UINT8 range", i, v)
			}
			d[i] = uint8(v)
		}
		return d, nil
	case tensor.Bool:
		d := make([]bool, 0, n)
		if json.Unmarshal(raw, &d) == nil {
			return d, nil
		}
		var f []float64
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("BOOL data is neither true/false nor numbers: %w", err)
		}
		d = make([]bool, len(f))
		for i, v := range f {
			d[i] = v != 0
		}
		return d, nil
	}
	return nil, fmt.Errorf("unsupported dtype %v", dt)
}

// decodeFloatsWithNulls parses flat float data in which null stands for
// NaN.
func decodeFloatsWithNulls(dt tensor.DType, raw []byte) (any, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, err
	}
	bits := 64
	if dt == tensor.Float32 {
		bits = 32
	}
	f := make([]float64, len(elems))
	for i, e := range elems {
		if string(e) == "null" {
			f[i] = math.NaN()
			continue
		}
		v, err := strconv.ParseFloat(string(e), bits)
		if err != nil {
			return nil, fmt.Errorf("element %d: %s is not a number", i, e)
		}
		f[i] = v
	}
	if dt == tensor.Float64 {
		return f, nil
	}
	d := make([]float32, len(f)) // exact: ParseFloat rounded to float32 already
	for i, v := range f {
		d[i] = float32(v)
	}
	return d, nil
}

// nullAt is the index of the first null element of a flat JSON array, or
// -1 when there is none (or raw is not one: the caller's decoding says
// so).
func nullAt(raw []byte) int {
	var elems []json.RawMessage
	if json.Unmarshal(raw, &elems) != nil {
		return -1
	}
	for i, e := range elems {
		if string(e) == "null" {
			return i
		}
	}
	return -1
}

// nested says whether a JSON array's first element is itself an array.
func nested(raw []byte) bool {
	if len(raw) == 0 || raw[0] != '[' {
		return false
	}
	rest := bytes.TrimLeft(raw[1:], " \t\r\n")
	return len(rest) > 0 && rest[0] == '['
}

func flattenJSON(raw json.RawMessage, out *[]json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		*out = append(*out, raw)
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return err
	}
	for _, it := range items {
		if err := flattenJSON(it, out); err != nil {
			return err
		}
	}
	return nil
}
