package onnx

import (
	"fmt"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/kinfer/kinfer/handlers"
	"github.com/kinfer/kinfer/tensor"
)

// dtypeOf maps an ONNX element type to ours; ok is false for the types
// kinfer does not carry (float16, bfloat16, strings, unsigned ints wider
// than 8 bits, complex, float8, int4).
func dtypeOf(t ort.TensorElementDataType) (tensor.DType, bool) {
	switch t {
	case ort.TensorElementDataTypeFloat:
		return tensor.Float32, true
	case ort.TensorElementDataTypeDouble:
		return tensor.Float64, true
	case ort.TensorElementDataTypeInt32:
		return tensor.Int32, true
	case ort.TensorElementDataTypeInt64:
		return tensor.Int64, true
	case ort.TensorElementDataTypeUint8:
		return tensor.Uint8, true
	case ort.TensorElementDataTypeInt8:
		return tensor.Int8, true
	case ort.TensorElementDataTypeBool:
		return tensor.Bool, true
	}
	return tensor.Invalid, false
}

// specOf turns ONNX Runtime's description of one model input or output
// into a TensorSpec. kind is "input" or "output", for the error message.
func specOf(kind string, info ort.InputOutputInfo) (handlers.TensorSpec, error) {
	if info.OrtValueType != ort.ONNXTypeTensor {
		hint := ""
		if info.OrtValueType == ort.ONNXTypeSequence || info.OrtValueType == ort.ONNXTypeMap {
			hint = " (for a scikit-learn classifier, convert it with skl2onnx option zipmap=False)"
		}
		return handlers.TensorSpec{}, fmt.Errorf("%s %q is a %v, not a tensor; only tensor inputs and outputs are supported%s",
			kind, info.Name, info.OrtValueType, hint)
	}
	dt, ok := dtypeOf(info.DataType)
	if !ok {
		return handlers.TensorSpec{}, fmt.Errorf("%s %q has element type %v, which kinfer does not support (supported: float32, float64, int32, int64, uint8, int8, bool)",
			kind, info.Name, elemName(info.DataType))
	}
	shape := make([]int64, len(info.Dimensions))
	for i, d := range info.Dimensions {
		// ONNX Runtime reports symbolic ("batch") and unknown dims as -1;
		// anything negative means dynamic to us.
		shape[i] = max(d, -1)
	}
	return handlers.TensorSpec{Name: info.Name, DType: dt, Shape: shape}, nil
}

// toORT wraps t's data in an ONNX Runtime tensor without copying it: ONNX
// Runtime reads the Go slice directly, so t must not change until the run
// that uses the value has finished. The caller destroys the value.
func toORT(t *tensor.Tensor) (ort.Value, error) {
	shape := ort.NewShape(t.Shape...)
	switch d := t.Data.(type) {
	case []float32:
		return wrap(ort.NewTensor(shape, d))
	case []float64:
		return wrap(ort.NewTensor(shape, d))
	case []int32:
		return wrap(ort.NewTensor(shape, d))
	case []int64:
		return wrap(ort.NewTensor(shape, d))
	case []uint8:
		return wrap(ort.NewTensor(shape, d))
	case []int8:
		return wrap(ort.NewTensor(shape, d))
	case []bool:
		// Go's bool and ONNX's are both one byte holding 0 or 1.
		return wrap(ort.NewTensor(shape, d))
	}
	return nil, fmt.Errorf("unsupported data %T", t.Data)
}

// wrap avoids returning a typed nil pointer inside a non-nil interface.
func wrap[T ort.TensorData](t *ort.Tensor[T], err error) (ort.Value, error) {
	if err != nil {
		return nil, err
	}
	return t, nil
}

// fromORT turns an output ONNX Runtime allocated into a tensor. It does not
// copy: for outputs it allocates, onnxruntime_go (v1.27,
// createTensorFromOrtValue) has already copied ONNX Runtime's buffer into a
// fresh Go slice and released the original, so the slice we take is ours
// alone and survives v.Destroy.
func fromORT(v ort.Value) (*tensor.Tensor, error) {
	shape := []int64(v.GetShape())
	switch t := v.(type) {
	case *ort.Tensor[float32]:
		return &tensor.Tensor{DType: tensor.Float32, Shape: shape, Data: t.GetData()}, nil
	case *ort.Tensor[float64]:
		return &tensor.Tensor{DType: tensor.Float64, Shape: shape, Data: t.GetData()}, nil
	case *ort.Tensor[int32]:
		return &tensor.Tensor{DType: tensor.Int32, Shape: shape, Data: t.GetData()}, nil
	case *ort.Tensor[int64]:
		return &tensor.Tensor{DType: tensor.Int64, Shape: shape, Data: t.GetData()}, nil
	case *ort.Tensor[uint8]:
		return &tensor.Tensor{DType: tensor.Uint8, Shape: shape, Data: t.GetData()}, nil
	case *ort.Tensor[int8]:
		return &tensor.Tensor{DType: tensor.Int8, Shape: shape, Data: t.GetData()}, nil
	case *ort.Tensor[bool]:
		return &tensor.Tensor{DType: tensor.Bool, Shape: shape, Data: t.GetData()}, nil
	}
	return nil, fmt.Errorf("unsupported output value %T", v)
}

// elemName renders ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 as "float16".
func elemName(t ort.TensorElementDataType) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "ONNX_TENSOR_ELEMENT_DATA_TYPE_"))
}
