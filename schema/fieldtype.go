package schema

import (
	"errors"
	"fmt"
	"strings"
)

// FieldType describes the Avro type of one record field, for checks made
// outside the [Mapper] (the preprocessing stages that read record fields
// check their inputs with it at start-up).
type FieldType struct {
	// Kind is the Avro type of the field's values with a ["null", T]
	// union removed: "boolean", "int", "long", "float", "double", "bytes",
	// "string", "record", "enum", "fixed", "array", "map", or "union" for
	// any other union.
	Kind string
	// Nullable reports a ["null", T] union: values may be null, and goavro
	// wraps the others as {"T": value}.
	Nullable bool
	// Logical reports a logical type whose goavro native form is not its
	// primitive's (date, time-*, timestamp-*, decimal).
	Logical bool
	// Items is the element type of an array, nil otherwise.
	Items *FieldType
	// Describe renders the type for messages ("double",
	// "array<long>", "union<null,string>").
	Describe string
}

// LookupField returns the type of the field at a dotted path ("amount",
// "payment.amount") of the record schema, walking nested (possibly
// nullable) records.
func LookupField(schemaJSON, path string) (FieldType, error) {
	root, err := parseSchema(schemaJSON)
	if err != nil {
		return FieldType{}, err
	}
	if root.kind != kindRecord {
		return FieldType{}, fmt.Errorf("top-level Avro type is %s, want a record", root.describe())
	}
	if path == "" {
		return FieldType{}, errors.New("empty field name")
	}
	f, _, err := resolvePath(root, strings.Split(path, "."))
	if err != nil {
		return FieldType{}, err
	}
	return fieldType(f.typ, 0), nil
}

func fieldType(t *avroType, depth int) FieldType {
	ft := FieldType{Describe: t.describe()}
	inner, isUnion, ok := t.nullable()
	if !ok {
		ft.Kind = kindUnion.String()
		return ft
	}
	ft.Nullable = isUnion && t.hasNull()
	ft.Kind = inner.kind.String()
	ft.Logical = inner.nativeLogical()
	if inner.kind == kindArray && depth < maxSchemaDepth {
		it := fieldType(inner.items, depth+1)
		ft.Items = &it
	}
	return ft
}
