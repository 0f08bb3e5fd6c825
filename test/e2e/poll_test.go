package e2e

import (
	"time"

	azruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

var runtimePollOpts = azruntime.PollUntilDoneOptions{Frequency: 200 * time.Millisecond}
