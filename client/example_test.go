package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/asyncqueue/asyncqueue/client"
)

// Create a task, then wait for its outcome with long polls.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := client.New("http://localhost:8080", os.Getenv("ASYNCQUEUE_API_KEY"))

	created, err := c.CreateTask(ctx, client.CreateTaskRequest{
		TargetURL:      "https://api.example.com/render",
		Body:           `{"doc": 42}`,
		MaxRetries:     client.Ptr(5),
		IdempotencyKey: "render-42", // a retried create returns the same task
	})
	if err != nil {
		log.Fatal(err)
	}
	task, err := c.AwaitTask(ctx, created.Task.ID) // until completed, failed, timeout or cancelled
	if err != nil {
		log.Fatal(err)
	}
	res, _ := task.CallResult()
	fmt.Println(task.Status, res.StatusCode, res.Body)
}

// A wait/signal task: the callback starts the work; whoever finishes it signals with the
// one-time token (no API key needed).
func ExampleClient_Signal() {
	ctx := context.Background()
	c := client.New("http://localhost:8080", os.Getenv("ASYNCQUEUE_API_KEY"))

	created, err := c.CreateTask(ctx, client.CreateTaskRequest{
		TargetURL:     "https://api.example.com/start-export",
		WaitForSignal: true,
		MaxWaitTime:   time.Hour,
	})
	if err != nil {
		log.Fatal(err)
	}
	token := created.SignalToken // shown only now: hand it to the worker

	// … later, in the worker, with a client that has no API key:
	worker := client.New("http://localhost:8080", "")
	_, _ = worker.Heartbeat(ctx, token, map[string]int{"percent": 50})
	res, err := worker.Signal(ctx, token, client.Signal{
		Status: client.StatusCompleted,
		Result: map[string]string{"url": "https://cdn.example.com/export.csv"},
	})
	switch {
	case client.IsConflict(err):
		fmt.Println("already resolved, timed out or cancelled:", err)
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println(res.Task.Status, string(res.Task.Result))
	}
}

// Check the signature of a webhook or callback in a receiver.
func ExampleVerifySignature() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // from GET /v1/webhook-secret
	body := []byte(`{"event":"task.completed","task":{"id":"0197"}}`)
	header := client.Sign(secret, time.Now(), body) // what asyncqueue sends as X-AsyncQueue-Signature

	fmt.Println(client.VerifySignature(secret, header, body, 5*time.Minute))

	err := client.VerifySignature(secret, header, []byte(`{"event":"task.failed"}`), 5*time.Minute)
	fmt.Println(errors.Is(err, client.ErrSignatureMismatch))

	old := client.Sign(secret, time.Now().Add(-10*time.Minute), body)
	err = client.VerifySignature(secret, old, body, 5*time.Minute)
	fmt.Println(errors.Is(err, client.ErrSignatureExpired))
	// Output:
	// <nil>
	// true
	// true
}

// The same with the Standard Webhooks headers (webhook-id, webhook-timestamp,
// webhook-signature), which any Standard Webhooks library also verifies.
func ExampleVerifyWebhook() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"event":"task.completed","task":{"id":"0197"}}`)
	h := http.Header{}
	client.SignHeaders(h, secret, "msg_0197", time.Now(), body)

	fmt.Println(client.VerifyWebhook(secret, h, body, 0))
	fmt.Println(client.VerifyWebhook("whsec_b3RoZXI=", h, body, 0))
	// Output:
	// <nil>
	// no signature matches the body
}

// Wrap a webhook handler so that it only sees verified requests.
func ExampleVerifyHandler() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	handler := client.VerifyHandler(secret, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ev, err := client.ParseEvent(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Println("got", ev.Event, "for", ev.Task.ID)
	}))

	body := `{"event":"task.completed","task":{"id":"0197","status":"completed"}}`
	signed := httptest.NewRequest("POST", "/webhook", strings.NewReader(body))
	signed.Header.Set(client.SignatureHeader, client.Sign(secret, time.Now(), []byte(body)))
	handler.ServeHTTP(httptest.NewRecorder(), signed)

	forged := httptest.NewRequest("POST", "/webhook", strings.NewReader(body))
	forged.Header.Set(client.SignatureHeader, client.Sign("whsec_guess", time.Now(), []byte(body)))
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, forged)
	fmt.Println(rec.Code)
	// Output:
	// got task.completed for 0197
	// 401
}

// API errors are *client.Error values with the server's message.
func ExampleIsNotFound() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error": "Task not found"}`)
	}))
	defer srv.Close()
	c := client.New(srv.URL, "async_…")

	_, err := c.GetTask(context.Background(), "0197a0c8-0000-7000-8000-000000000000")
	fmt.Println(client.IsNotFound(err), client.IsConflict(err))
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.StatusCode, e.Message)
	}
	// Output:
	// true false
	// 404 Task not found
}
