//go:build linux

package loadform

// need says whether a request takes a column.
type need byte

const (
	unused   need = iota // must be left empty
	optional             // may be empty
	required             // must be filled
)

func (n need) String() string {
	switch n {
	case required:
		return "required"
	case optional:
		return "optional"
	}
	return "leave empty"
}

// field describes one column for the Instructions sheet, the header
// comments and the error messages: one table, so that what the form says
// and what Parse checks cannot drift apart.
type field struct {
	col       Column
	name      string // in a sentence: "version title"
	meaning   string
	allowed   string // the limits, as the messages quote them
	width     float64
	multiline bool
	need      map[Request]need
}

func needs(newProduct, newVersion, addOption need) map[Request]need {
	return map[Request]need{NewProduct: newProduct, NewVersion: newVersion, AddOption: addOption}
}

// fields is in column order: fields[i].col == Columns[i].
var fields = []field{
	{ColRequest, "request type", "What the row asks for: a new product (F3), a new version of an existing product (F2), or a package group added as a fulfillment option to an existing version (F1).",
		"new product, new version or add fulfillment option (pick from the drop-down)", 22, false, needs(required, required, required)},
	{ColProductID, "product ID", "The existing product the row changes, as pib products ls shows it. A new product gets its ID when the change is approved.",
		"up to 64 letters, digits, _ and -", 24, false, needs(unused, required, required)},
	{ColProductTitle, "product title", "The product's name as buyers see it.",
		"1–" + thousands(MaxProductTitle) + " characters", 30, false, needs(required, unused, unused)},
	{ColVersionTitle, "version title", "The version buyers pick (e.g. 2.4.1). For add fulfillment option: the existing version, which must equal the package group's software version.",
		"1–" + thousands(MaxVersionTitle) + " characters", 18, false, needs(required, required, required)},
	{ColReleaseNotes, "release notes", "What is new in this version.",
		"1–" + thousands(MaxReleaseNotes) + " characters", 40, true, needs(required, required, unused)},
	{ColUsage, "usage instructions", "How a buyer uses the software once it is installed on their image. For add fulfillment option: how to use this option (optional).",
		"1–" + thousands(MaxUsage) + " characters", 40, true, needs(required, required, optional)},
	{ColPackageGroup, "package group", "The name of one of your Successful package groups (see the Package groups sheet): the fulfillment option buyers install.",
		"a package group name: 1–99 characters, A–Z a–z 0–9 _ - (rule N1)", 28, false, needs(required, required, required)},
	{ColPlatform, "platform", "The package group's platform.",
		"linux or windows (pick from the drop-down)", 12, false, needs(required, required, required)},
	{ColShortDescription, "short description", "A summary shown in product listings.",
		"1–" + thousands(MaxShortDescription) + " characters", 40, true, needs(required, unused, unused)},
	{ColLongDescription, "long description", "The full description on the product page.",
		"1–" + thousands(MaxLongDescription) + " characters", 50, true, needs(required, unused, unused)},
	{ColHighlights, "highlights", "Up to three key points shown on the product page, one per line in the cell (Alt+Enter starts a new line).",
		"up to " + thousands(MaxHighlights) + " lines, each 1–" + thousands(MaxHighlight) + " characters", 40, true, needs(optional, unused, unused)},
	{ColCategory, "category", "Where buyers find the product.",
		"one of the categories in the drop-down", 22, false, needs(required, unused, unused)},
	{ColSupportContact, "support contact", "Where buyers ask for help.",
		"an email address, up to " + thousands(MaxEmail) + " characters", 28, false, needs(required, unused, unused)},
	{ColEULAURL, "EULA URL", "The product's end-user licence agreement.",
		"an http:// or https:// address, up to " + thousands(MaxURL) + " characters", 32, false, needs(optional, unused, unused)},
	{ColLogoURL, "logo URL", "The product's logo image.",
		"an http:// or https:// address, up to " + thousands(MaxURL) + " characters", 32, false, needs(optional, unused, unused)},
	{ColTestAccounts, "test accounts", "Accounts allowed to test-fulfil the product or version before it is public (limited visibility). Empty: only you.",
		"up to " + thousands(MaxTestAccounts) + " account names separated by commas (lower-case letters, digits, _ and -)", 30, false, needs(optional, optional, optional)},
}

// requestInfo explains each request on the Instructions sheet.
var requestInfo = map[Request]string{
	NewProduct: "A new product with its first version, fulfilled by a package group (rule F3). Leave the product ID empty.",
	NewVersion: "A new version of one of your products, fulfilled by a package group whose builds are all Successful (rule F2). Product details stay as they are: leave those columns empty.",
	AddOption:  "A package group added as a new fulfillment option to an existing version (rule F1): the group's software version must equal the version title, and the version must not have a group for that platform yet.",
}
