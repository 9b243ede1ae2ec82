package remote

import (
	"testing"
)

// FuzzDecodeReply feeds arbitrary server replies to the decoder: it must
// return an error or valid tensors, never panic or allocate without
// bound.
func FuzzDecodeReply(f *testing.F) {
	f.Add([]byte(`{"model_name":"m","model_version":"1","outputs":[{"name":"y","datatype":"FP32","shape":[1,2],"data":[1,2]}]}`), -1)
	f.Add([]byte(`{"outputs":[{"name":"y","datatype":"INT64","shape":[2,2],"data":[[1,2],[3,4]]}]}`), -1)
	f.Add([]byte(`{"outputs":[{"name":"b","datatype":"BOOL","shape":[2],"data":[1,0]}]}`), -1)
	f.Add([]byte(`{"outputs":[{"name":"u","datatype":"UINT8","shape":[2],"data":[255,0]}]}`), -1)
	head := `{"outputs":[{"name":"y","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}}]}`
	f.Add(append([]byte(head), 0, 0, 128, 63, 0, 0, 0, 64), len(head))
	f.Fuzz(func(t *testing.T, body []byte, jsonLen int) {
		if jsonLen < -1 {
			jsonLen = -1
		}
		_, out, err := decodeReply(body, jsonLen)
		if err != nil {
			return
		}
		for name, o := range out {
			if err := o.Validate(); err != nil {
				t.Fatalf("output %q decoded without error but is invalid: %v", name, err)
			}
		}
	})
}
