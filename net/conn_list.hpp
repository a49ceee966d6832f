// An intrusive doubly linked list of connections ordered by activity (the head is the least
// recently active), shared by the worker's and the balancer's TCP servers: touching a
// connection moves it to the tail, the idle sweep walks from the head, and at the connection
// cap the head is the one to close. T needs `T* prev` and `T* next` members.
#pragma once

#include <cstddef>

namespace dp::net {

template <typename T>
struct ConnList {
    T* head = nullptr;
    T* tail = nullptr;
    size_t size = 0;

    void push_back(T* c) {
        c->prev = tail;
        c->next = nullptr;
        if (tail) tail->next = c;
        else head = c;
        tail = c;
        ++size;
    }

    void remove(T* c) {
        if (c->prev) c->prev->next = c->next;
        else head = c->next;
        if (c->next) c->next->prev = c->prev;
        else tail = c->prev;
        c->prev = c->next = nullptr;
        --size;
    }
};

}  // namespace dp::net
