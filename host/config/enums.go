package config

import "github.com/dsmil/l7/sdk/dbe"

// dsmil.hcl spells a tenant's classification, roe and compartments with the
// DBE names (dbe.Classification, dbe.ROELevel, dbe.Compartment), parsed with
// dbe.ClassificationByName, dbe.ROELevelByName and dbe.CompartmentByName.
// These are the valid spellings, in wire order, for diagnostics.
var (
	classificationNames = enumNames(dbe.Unclas, dbe.Exec)
	roeNames            = enumNames(dbe.AnalysisOnly, dbe.Training)
	compartmentNames    = func() []string {
		var out []string
		for _, c := range dbe.Compartments() {
			out = append(out, c.String())
		}
		return out
	}()
)

// enumNames returns the names of the values lo through hi.
func enumNames[E interface {
	~uint8
	String() string
}](lo, hi E) []string {
	var out []string
	for e := lo; e <= hi; e++ {
		out = append(out, e.String())
	}
	return out
}
