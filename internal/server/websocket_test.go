package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The keep-alive of exec and attach sessions, with short timings: a quiet
// peer that answers pings keeps its session; a peer that answers nothing
// (gone, or never reading) is dropped after the pong wait; a frame beyond
// the limit ends the session.
func TestWebsocketKeepAlive(t *testing.T) {
	const pongWait, pingPeriod = 600 * time.Millisecond, 200 * time.Millisecond
	ended := make(chan time.Duration, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		start := time.Now()
		keepAlive(ctx, conn, pongWait, pingPeriod)
		for {
			if _, _, err := readFrame(conn, pongWait); err != nil {
				ended <- time.Since(start)
				return
			}
		}
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	dial := func() *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Quiet but alive: the client only reads, so it answers pings, and
	// sends nothing for five pong waits.
	quiet := dial()
	go func() {
		for {
			if _, _, err := quiet.ReadMessage(); err != nil {
				return
			}
		}
	}()
	select {
	case d := <-ended:
		t.Fatalf("a quiet peer that answers pings was dropped after %v", d)
	case <-time.After(5 * pongWait):
	}
	quiet.Close()
	<-ended

	// Gone: the client never reads, so no pong goes back.
	mute := dial()
	defer mute.Close()
	select {
	case d := <-ended:
		if d < pongWait || d > pongWait+time.Second {
			t.Fatalf("a mute peer was dropped after %v, want about %v", d, pongWait)
		}
	case <-time.After(5 * pongWait):
		t.Fatal("a peer that answers no ping is never dropped")
	}

	// A frame beyond wsMaxMessage ends the session at once.
	big := dial()
	defer big.Close()
	if err := big.WriteMessage(websocket.BinaryMessage, make([]byte, wsMaxMessage+1)); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-ended:
		if d > pongWait/2 {
			t.Fatalf("an oversized frame ended the session only after %v", d)
		}
	case <-time.After(5 * pongWait):
		t.Fatal("an oversized frame did not end the session")
	}
}
