// Package schema turns Kafka record values into named tensors and model
// outputs back into Kafka record values.
//
// It owns three things and nothing else:
//
//   - Decoding: plain Avro binary with a fixed writer schema ([FileDecoder])
//     and the Confluent wire format with schemas fetched by id from a Schema
//     Registry ([RegistryDecoder]). Both produce goavro's native form.
//   - Mapping: [Mapper] turns the native form of one record into the named
//     per-row tensors a model consumes, validated against the Avro schema at
//     start-up and type-checked again per record.
//   - Encoding: [BuildOutputSchema], [OutputBuilder] and [Encoder] turn model
//     outputs plus pass-through input fields into an Avro prediction record.
//
// Every per-record failure is an [*Error] whose Reason is one of the Reason
// constants, so the engine can route the record to a dead-letter topic with
// a machine-readable reason header. The package never talks to Kafka and
// knows nothing about models.
package schema
