package config

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownValue is wrapped by the Parse functions of this file when a name
// is not one of the valid values.
var ErrUnknownValue = errors.New("config: unknown value")

// Classification is a tenant's classification. The numeric values match the
// DBE wire encoding of the CLASSIFICATION TLV.
type Classification uint8

// Classifications, in wire order.
const (
	ClassificationUnclas Classification = 1 // UNCLAS
	ClassificationSecret Classification = 2 // SECRET
	ClassificationTS     Classification = 3 // TS
	ClassificationTSSim  Classification = 4 // TS_SIM
	ClassificationExec   Classification = 5 // EXEC: always denied at Layer 7
)

var classificationNames = []string{"UNCLAS", "SECRET", "TS", "TS_SIM", "EXEC"}

// String returns the config spelling, such as "TS_SIM".
func (c Classification) String() string {
	if c >= 1 && int(c) <= len(classificationNames) {
		return classificationNames[c-1]
	}
	return fmt.Sprintf("Classification(%d)", uint8(c))
}

// MarshalText returns the config spelling.
func (c Classification) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// ParseClassification parses the config spelling (case-sensitive).
func ParseClassification(s string) (Classification, error) {
	for i, n := range classificationNames {
		if n == s {
			return Classification(i + 1), nil
		}
	}
	return 0, fmt.Errorf("%w: classification %q (valid: %s)", ErrUnknownValue, s, strings.Join(classificationNames, ", "))
}

// ROE is a tenant's rules-of-engagement level. The numeric values match the
// DBE wire encoding of the ROE_LEVEL TLV.
type ROE uint8

// ROE levels, in wire order.
const (
	ROEAnalysisOnly ROE = 1 // ANALYSIS_ONLY
	ROESOCAssist    ROE = 2 // SOC_ASSIST
	ROETraining     ROE = 3 // TRAINING
)

var roeNames = []string{"ANALYSIS_ONLY", "SOC_ASSIST", "TRAINING"}

// String returns the config spelling, such as "SOC_ASSIST".
func (r ROE) String() string {
	if r >= 1 && int(r) <= len(roeNames) {
		return roeNames[r-1]
	}
	return fmt.Sprintf("ROE(%d)", uint8(r))
}

// MarshalText returns the config spelling.
func (r ROE) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// ParseROE parses the config spelling (case-sensitive).
func ParseROE(s string) (ROE, error) {
	for i, n := range roeNames {
		if n == s {
			return ROE(i + 1), nil
		}
	}
	return 0, fmt.Errorf("%w: roe %q (valid: %s)", ErrUnknownValue, s, strings.Join(roeNames, ", "))
}

// Compartment is one bit of the DBE COMPARTMENT_MASK.
type Compartment uint8

// Compartments and their mask bits.
const (
	CompartmentSOC     Compartment = 0x01
	CompartmentDEV     Compartment = 0x02
	CompartmentLAB     Compartment = 0x04
	CompartmentCRYPTO  Compartment = 0x08
	CompartmentKINETIC Compartment = 0x80 // always denied at Layer 7
)

var compartments = []struct {
	name string
	c    Compartment
}{
	{"SOC", CompartmentSOC},
	{"DEV", CompartmentDEV},
	{"LAB", CompartmentLAB},
	{"CRYPTO", CompartmentCRYPTO},
	{"KINETIC", CompartmentKINETIC},
}

func compartmentNames() []string {
	out := make([]string, len(compartments))
	for i, c := range compartments {
		out[i] = c.name
	}
	return out
}

// String returns the config spelling, such as "SOC".
func (c Compartment) String() string {
	for _, e := range compartments {
		if e.c == c {
			return e.name
		}
	}
	return fmt.Sprintf("Compartment(%#02x)", uint8(c))
}

// MarshalText returns the config spelling.
func (c Compartment) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// ParseCompartment parses the config spelling (case-sensitive).
func ParseCompartment(s string) (Compartment, error) {
	for _, e := range compartments {
		if e.name == s {
			return e.c, nil
		}
	}
	return 0, fmt.Errorf("%w: compartment %q (valid: %s)", ErrUnknownValue, s, strings.Join(compartmentNames(), ", "))
}
