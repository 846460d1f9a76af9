package datastore

import (
	"encoding/json"
	"fmt"
)

// SchemaVersion is the version of the record envelope and of the record
// types this build writes. A record with a newer version is refused with
// ErrSchema rather than misread.
const SchemaVersion = 1

// envelope is a record as stored: the schema version and the record's JSON.
type envelope struct {
	V    int             `json:"v"`
	Data json.RawMessage `json:"data"`
}

// encodeRecord marshals rec into an envelope of the current version.
func encodeRecord(rec any) ([]byte, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return json.Marshal(envelope{V: SchemaVersion, Data: data})
}

// decodeRecord checks the envelope in b and unmarshals its data into rec.
func decodeRecord(b []byte, rec any) error {
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%w: envelope: %w", ErrCorrupt, err)
	}
	if env.V < 1 || env.V > SchemaVersion {
		return fmt.Errorf("%w: record has version %d, this build reads up to %d", ErrSchema, env.V, SchemaVersion)
	}
	if err := json.Unmarshal(env.Data, rec); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return nil
}
