//go:build linux

package scan

import (
	"fmt"
	"io"

	"github.com/anchore/syft/syft/format/cyclonedxjson"
	"github.com/anchore/syft/syft/format/spdxjson"
	"github.com/anchore/syft/syft/format/syftjson"
	"github.com/anchore/syft/syft/sbom"
)

// SBOMFormats are the formats EncodeSBOM and ConvertSBOM write.
var SBOMFormats = []string{CycloneDXJSON, SPDXJSON, SyftJSON}

func sbomEncoder(format string) (sbom.FormatEncoder, error) {
	switch format {
	case CycloneDXJSON:
		return cyclonedxjson.NewFormatEncoderWithConfig(cyclonedxjson.DefaultEncoderConfig())
	case SPDXJSON:
		return spdxjson.NewFormatEncoderWithConfig(spdxjson.DefaultEncoderConfig())
	case SyftJSON:
		return syftjson.NewFormatEncoderWithConfig(syftjson.DefaultEncoderConfig())
	}
	return nil, fmt.Errorf("SBOM format %q: want %s, %s or %s", format, CycloneDXJSON, SPDXJSON, SyftJSON)
}

// ConvertSBOM writes the syft JSON SBOM read from src in format, as
// EncodeSBOM would have written it from the scan's own SBOM: syft JSON
// holds everything syft's other encoders read (it is what `syft convert`
// starts from), so a server keeps one SBOM per scan, in the cheapest
// format to write, and makes the standard ones when they are asked for.
// src is pib's own output, but it is read with syft's decoder, which
// checks its schema like any other input's.
func ConvertSBOM(w io.Writer, src io.Reader, format string) error {
	enc, err := sbomEncoder(format)
	if err != nil {
		return err
	}
	doc, _, _, err := syftjson.NewFormatDecoder().Decode(src)
	if err != nil {
		return fmt.Errorf("read the kept SBOM: %w", err)
	}
	if doc == nil {
		return fmt.Errorf("read the kept SBOM: not syft JSON")
	}
	return enc.Encode(w, *doc)
}
